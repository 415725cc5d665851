# Regenerates torch_topk_cases.json: the index sets PyTorch's CPU topk picks among tied
# scores (the shapes of PS3's block-tied selection maps), for tests/model/torch_topk_test.ts.
# Run with any PyTorch 2.x on the CPU: python3 gen_torch_topk.py > torch_topk_cases.json
import json, random, torch

random.seed(0)
cases = []
for t in range(120):
    n = random.choice([5, 16, 64, 100, 196, 256, 729, 1024])
    distinct = random.choice([1, 2, 3, 5, 20, n])
    vals = [round(random.randrange(distinct) / distinct, 4) for _ in range(n)]
    g = int(n ** 0.5)
    if random.random() < 0.5 and g * g == n and g % 2 == 0:
        low = [round(random.random(), 4) for _ in range((g // 2) ** 2)]
        vals = [low[(r // 2) * (g // 2) + (c // 2)] for r in range(g) for c in range(g)]
        for i in random.sample(range(n), random.randrange(n // 3 + 1)):
            vals[i] = 1.0
    k = max(1, min(random.choice([1, 2, 3, n // 64, n // 64 + 1, n // 10, n // 2, n - 1, n]), n))
    idx = sorted(torch.tensor([vals], dtype=torch.float64).topk(k=k, dim=-1).indices[0].tolist())
    cases.append({"values": vals, "k": k, "indices": idx})
print(json.dumps({"torch": torch.__version__, "cases": cases}, separators=(",", ":")))
