#!/usr/bin/python3
"""PIL reference for bench_imgresize.sh: Image.open(p).convert('RGB').resize((32, 32), BILINEAR)
on every file of a directory (sorted), one process, as a torchvision data loader does without
workers. Prints 'N SECONDS'; with a second argument, saves the (N,32,32,3) uint8 batch there."""
import os
import sys
import time

import numpy as np
from PIL import Image

d = sys.argv[1]
names = sorted(n for n in os.listdir(d) if not n.startswith("."))
t = time.perf_counter()
out = [np.asarray(Image.open(os.path.join(d, n)).convert("RGB").resize((32, 32), Image.BILINEAR))
       for n in names]
dt = time.perf_counter() - t
if len(sys.argv) > 2:
    np.save(sys.argv[2], np.stack(out))
print(len(names), "%.4f" % dt)
