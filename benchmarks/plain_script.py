"""The paper's experiment as a plain single-file PyTorch script: the benchmark's reference.

Written for benchmarks/run.py (target: the default `mirror-sweep` run <= 0.7x this script's wall
time), the way one would write the experiment without the project: the same environment, model,
objective and training (shared GRU, H=96, 2,000 x 12-step sequences, Adam lr 1e-3, batch 64,
20 epochs, held-out evaluation each epoch), torch's default threads and torch.optim.Adam, and the
paper's analysis only: per-unit perform-vs-observe Pearson r on the 300 held-out sequences, a
1,000-permutation test re-pairing sequences (vectorised over units), a BH count, and one decoder
(logistic regression trained on perform states, tested on observe states). No config system, no
files. It shares no code with mirror_sweep, so it measures the cost of the project's machinery.

Usage: python benchmarks/plain_script.py [--seed 42] [--threads N]   (prints the results)
"""

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

N_ACTIONS, SENSORY, SEQ_LEN, HIDDEN = 4, 16, 12, 96
N_TRAIN, N_TEST, EPOCHS, BATCH, LR = 2000, 300, 20, 64, 1e-3
DECAY, NOISE, N_PERMUTATIONS = 0.9, 0.1, 1000


def make_data(n, effects, rng):
    actions = rng.integers(0, N_ACTIONS, size=(n, SEQ_LEN))
    noise = NOISE * rng.standard_normal((n, SEQ_LEN, SENSORY))
    sensory = np.zeros((n, SEQ_LEN, SENSORY))
    state = np.zeros((n, SENSORY))
    for t in range(SEQ_LEN):
        state = DECAY * state + effects[actions[:, t]] + noise[:, t]
        sensory[:, t] = state
    return torch.from_numpy(actions), torch.from_numpy(sensory.astype(np.float32))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(N_ACTIONS, HIDDEN)
        self.project = nn.Linear(SENSORY, HIDDEN)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.sensory_head = nn.Linear(HIDDEN, SENSORY)
        self.action_head = nn.Linear(HIDDEN, N_ACTIONS)

    def forward(self, actions, sensory):
        hidden, _ = self.gru(torch.cat([self.embed(actions), self.project(sensory)]))
        return hidden[: len(actions)], hidden[len(actions):]

    def losses(self, actions, sensory):
        perform, observe = self(actions, sensory)
        forward = nn.functional.mse_loss(self.sensory_head(perform), sensory)
        logits = self.action_head(observe)
        inverse = nn.functional.cross_entropy(logits.flatten(0, 1), actions.flatten())
        return forward, inverse, logits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    effects = rng.standard_normal((N_ACTIONS, SENSORY))
    train_a, train_s = make_data(N_TRAIN, effects, rng)
    test_a, test_s = make_data(N_TEST, effects, rng)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(N_TRAIN)
        total = 0.0
        for i in range(0, N_TRAIN, BATCH):
            idx = order[i: i + BATCH]
            forward, inverse, _ = model.losses(train_a[idx], train_s[idx])
            loss = forward + inverse
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            _, _, logits = model.losses(test_a, test_s)
            accuracy = (logits.argmax(-1) == test_a).float().mean().item()
        print(f"epoch {epoch + 1}: train loss {total / -(-N_TRAIN // BATCH):.4f}, "
              f"test observe accuracy {accuracy:.3f}")
    train_end = time.perf_counter()

    with torch.no_grad():
        perform, observe = (h.numpy().astype(np.float64) for h in model(test_a, test_s))

    def zscore(x):
        flat = x.reshape(-1, HIDDEN)
        return ((flat - flat.mean(0)) / flat.std(0)).reshape(x.shape)

    z_p, z_o = zscore(perform), zscore(observe)
    r = (z_p * z_o).mean(axis=(0, 1))
    exceed = np.zeros(HIDDEN)
    for _ in range(N_PERMUTATIONS):
        exceed += np.abs((z_p * z_o[rng.permutation(N_TEST)]).mean(axis=(0, 1))) >= np.abs(r)
    p = (exceed + 1) / (N_PERMUTATIONS + 1)
    ranked = np.sort(p) * HIDDEN / np.arange(1, HIDDEN + 1)
    n_bh = int(np.max(np.nonzero(ranked <= 0.05)[0], initial=-1) + 1)
    decoder = LogisticRegression(max_iter=1000).fit(perform.reshape(-1, HIDDEN), test_a.flatten())
    decoding = decoder.score(observe.reshape(-1, HIDDEN), test_a.flatten())
    end = time.perf_counter()
    print(f"|r| > 0.6: {np.mean(np.abs(r) > 0.6):.1%}, r > 0.75: {np.mean(r > 0.75):.1%}, "
          f"max r {r.max():.3f}, min r {r.min():.3f}, BH-significant units {n_bh}, "
          f"perform->observe decoding {decoding:.3f}")
    print(f"time: data+training {train_end - start:.2f} s, analysis {end - train_end:.2f} s, "
          f"threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
