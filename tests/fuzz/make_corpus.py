#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ (run from anywhere; idempotent).

Small hand-made inputs, valid and broken, one directory per fuzz target. The protobuf
inputs are encoded here by hand (varints and length-delimited fields), so the script
needs nothing but Python.
"""
import gzip
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fv(field, n):  # varint field
    return varint(field << 3) + varint(n)


def fb(field, data):  # length-delimited field
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def ff(field, x):  # float (fixed32) field
    return varint(field << 3 | 5) + struct.pack("<f", x)


def floats(*xs):
    return b"".join(struct.pack("<f", x) for x in xs)


def keys(*ks):
    return b"".join(struct.pack("<Q", k) for k in ks)


# --- packing: raw packed buffers; the first 8 bytes double as a claimed count.
write("packing", "empty", b"")
write("packing", "three_floats", floats(1.0, -2.5, 3.25))
write("packing", "nan_inf", floats(0.0, float("nan"), float("inf")))
write("packing", "two_keys", keys(1, 2**63 + 5))
write("packing", "odd_length", b"\x01\x02\x03\x04\x05\x06\x07")
write("packing", "count_then_payload", struct.pack("<Q", 2) + floats(1.0, 2.0))
write("packing", "huge_count", struct.pack("<Q", 2**62 + 1) + floats(1.0))

# --- job_spec: text-format specs (what psctl submits) and one binary encoding.
GOOD = """name: "digits"
model { mlp { hidden: 32 hidden: 16 } init { kind: NORMAL scale: 0.05 } }
data { format: CSV train_path: "tests/data/digits.csv.gz" test_every: 5
       num_features: 64 num_classes: 10 label_column: -1 feature_scale: 0.0625 }
optimizer { adam { beta1: 0.9 beta2: 0.999 epsilon: 1e-8 } learning_rate: 0.01 }
consistency { mode: BOUNDED staleness: 2 }
num_workers: 2 batch_size: 64 epochs: 3
checkpoint { interval_clocks: 50 keep: 3 }
seed: 7 eval { every_clocks: 20 } target_accuracy: 0.9
"""
write("job_spec", "good_mlp.textproto", GOOD)
write("job_spec", "sparse_libsvm.textproto", """model { logistic_sparse {} }
data { format: LIBSVM train_path: "a.svm" num_features: 1000 num_classes: 2 libsvm_one_based: true }
optimizer { adagrad { epsilon: 1e-10 initial_accumulator: 0.1 } learning_rate: 0.5 }
consistency { mode: ASYNC } num_workers: 4 batch_size: 128 epochs: 1 nonfinite: NONFINITE_ZERO
""")
write("job_spec", "idx_softmax.textproto", """model { softmax {} }
data { format: IDX train_path: "i.gz" train_labels_path: "l.gz" test_path: "ti.gz"
       test_labels_path: "tl.gz" num_features: 784 num_classes: 10 feature_scale: 0.00392 }
optimizer { momentum { momentum: 0.9 nesterov: true } learning_rate: 0.1 weight_decay: 1e-4 }
consistency { mode: SYNC } num_workers: 1 batch_size: 32 epochs: 2 device: DEVICE_CPU
""")
write("job_spec", "bad_staleness.textproto", GOOD.replace("BOUNDED", "SYNC"))
write("job_spec", "bad_lr.textproto", GOOD.replace("learning_rate: 0.01", "learning_rate: nan"))
write("job_spec", "empty.textproto", "")
# Found by the fuzzer: the text parser keeps a string that is not UTF-8, which the binary
# parser then refuses.
write("job_spec", "non_utf8_path.textproto", GOOD.encode().replace(b"digits.csv", b"dig\x9dts.csv"))
write("job_spec", "binary_minimal",
      fb(2, fb(1, b"")) + fb(3, fv(1, 2) + fb(2, "t.csv") + fv(7, 4) + fv(8, 3)) +
      fb(4, fb(1, b"") + ff(10, 0.1)) + fb(5, fv(1, 3)) + fv(6, 1) + fv(7, 8) + fv(8, 1))


# --- request: byte 0 (mode/workers/policy), then [op][len lo][len hi][proto] records.
def rec(op, payload):
    return bytes([op, len(payload) & 0xFF, len(payload) >> 8]) + payload


def dense(begin, count, table="w"):
    return fb(1, table) + fv(2, begin) + fv(3, count)


def sparse(ks, table="emb"):
    return fb(1, table) + fb(4, keys(*ks))


def pull(rank, clock, *slices, no_wait=False):
    return fb(1, "job") + fv(2, rank) + fv(3, clock) + b"".join(fb(4, s) for s in slices) + \
        (fv(5, 1) if no_wait else b"")


def push(rank, clock, values, *slices, part=0, num_parts=1, encoding=0):
    return (fb(1, "job") + fv(2, rank) + fv(3, clock) + fv(4, part) + fv(5, num_parts) +
            b"".join(fb(6, s) for s in slices) + fb(7, values) +
            (fv(8, encoding) if encoding else b""))


def bf16(*xs):  # Truncated, which is what round-to-nearest gives for these values.
    return b"".join(struct.pack("<f", x)[2:] for x in xs)


ASYNC1 = bytes([2])  # mode 1 + 2 = ASYNC, 1 worker, NaN rejected.
SYNC2 = bytes([0 | (1 << 2)])  # SYNC, 2 workers.
write("request", "async_pull_push",
      ASYNC1 + rec(2, pull(0, 0, dense(0, 4), sparse([1, 2]))) +
      rec(3, push(0, 0, floats(*[0.5] * (4 + 16)), dense(0, 4), sparse([1, 2]))) +
      rec(2, pull(0, 1, dense(996, 4))))
write("request", "sync_two_workers",
      SYNC2 + rec(3, push(0, 0, floats(1, 2), dense(10, 2))) +
      rec(3, push(1, 0, floats(3, 4), dense(10, 2))) +
      rec(3, push(1, 0, floats(3, 4), dense(10, 2))) +  # A duplicate.
      rec(2, pull(0, 1, dense(10, 2))))
write("request", "malformed",
      ASYNC1 + rec(2, pull(0, 0, dense(999, 5))) +              # Out of range.
      rec(2, pull(0, 0, sparse([]))) +                          # No keys.
      rec(2, pull(0, 0, fb(1, "emb") + fb(4, b"\x01\x02\x03"))) +  # Not whole keys.
      rec(2, pull(0, 0, dense(0, 1, "nope"))) +                 # No such table.
      rec(3, push(0, 0, floats(1.0), dense(0, 2))) +            # Too few values.
      rec(3, push(0, 0, floats(float("nan")), dense(0, 1))) +   # NaN.
      rec(3, push(5, 0, floats(1.0), dense(0, 1))) +            # Rank.
      rec(3, push(0, 0, floats(1.0), dense(0, 1), part=3, num_parts=2)))
write("request", "bf16_pushes",
      SYNC2 + rec(3, push(0, 0, bf16(1.5, -2.0, 0.25), dense(10, 3), part=2, num_parts=3,
                          encoding=1)) +
      rec(3, push(0, 0, bf16(1.0), dense(0, 2), encoding=1)) +               # Too few.
      rec(3, push(0, 0, bf16(float("inf"), 1.0), dense(0, 2), encoding=1)) +  # Inf.
      rec(3, push(0, 0, bf16(1.0), dense(0, 1), encoding=9)))                 # Unknown.
write("request", "create_tables",
      ASYNC1 + rec(1, fb(1, "bias") + fv(2, 1) + fv(3, 10) + fb(6, fb(1, b"") + ff(10, 0.1))) +
      rec(1, fb(1, "big") + fv(2, 1) + fv(3, 2**34) + fb(6, fb(4, b"") + ff(10, 0.1))) +
      rec(1, fb(1, "bad name!") + fv(2, 2) + fv(4, 4)) +
      rec(2, pull(0, 0, dense(0, 10, "bias"))))
write("request", "new_job",
      ASYNC1 + rec(0, fb(1, "job2") + fv(2, 9) + fb(3, fv(1, 2) + fv(2, 1)) + fv(4, 2) + fv(7, 3)) +
      rec(0, fb(1, "") + fv(4, 0)) +
      rec(2, pull(1, 0, dense(0, 1))))

# --- wire: byte 0 (bit 7: PullResponse, else PushRequest; low 6 bits: slice size - 1,
# all set: one slice), then the message.
PUSH = push(0, 3, floats(1.5, -2.0, 0.25), dense(10, 1), sparse([7, 9]), encoding=1)
write("wire", "push_one_slice", bytes([0x3F]) + PUSH)
write("wire", "push_in_3_byte_slices", bytes([2]) + PUSH)
write("wire", "push_values_first", bytes([4]) + fb(7, floats(1.0)) + fb(1, "job") +
      fb(6, sparse([1])))
write("wire", "push_values_twice", bytes([0]) + fb(7, b"old") + fv(2, 1) + fb(7, floats(2.0)))
write("wire", "push_truncated", bytes([5]) + PUSH[:-3])
write("wire", "push_group", bytes([1]) + b"\x0b\x10\x01\x0c" + fb(7, b"x"))
write("wire", "push_bad_slice", bytes([1]) + fb(6, b"\x10\xff") + fb(7, b""))
write("wire", "pull_reply", bytes([0x80 | 6]) + fb(1, floats(*range(10))) + fv(2, 4))
# Found by the fuzzer: after the values, a tag in 6 bytes, which protobuf refuses (5 at
# most); copied out re-encoded, it was accepted.
# Found by a review: a length of 2^32 + 3, which cut to 32 bits reads as 3.
write("wire", "length_past_32_bits", bytes([0x3F]) + b"\x3a\x83\x80\x80\x80\x10abc")
write("wire", "six_byte_tag_after_values",
      bytes([4]) + fb(7, b"\0\0\xdd\xdd") + b"\xdd\xdd\xdd\x3f" + b"\xdd" * 4 +
      b"\xdd" * 5 + b"\x1a" + b"\x70\0\0\0")

# --- readers: byte 0 and 1 pick the options (see each target), then the file(s).
CSV_HDR = bytes([0x02 | 0x10 | (0 << 5), 0])  # 3 features, header, label last; scale 1.
write("csv_reader", "good", CSV_HDR + b"a,b,c,y\n1,2,3,0\n4.5,-6,7e1,1\r\n\n0,0,0,1")
write("csv_reader", "good_gz", CSV_HDR + gzip.compress(b"a,b,c,y\n1,2,3,0\n4,5,6,1\n", mtime=0))
write("csv_reader", "label_first", bytes([0x01 | (1 << 5), 3 * 2]) + b"2,0.5,0.25\n+1,1,1\n")
write("csv_reader", "bad_columns", CSV_HDR + b"h\n1,2\n")
write("csv_reader", "nan", CSV_HDR + b"h\n1,nan,3,0\n")
write("csv_reader", "big_value_scaled", bytes([0x02, 2]) + b"3e38,1,1,0\n")
write("csv_reader", "truncated_gz", CSV_HDR + gzip.compress(b"a,b,c,y\n1,2,3,0\n" * 20, mtime=0)[:30])
write("libsvm_reader", "good", bytes([0x10 | 9, 0]) + b"+1 1:0.5 3:2 # c\n-1 2:1\n\n# only\n0 10:1e-3\n")
write("libsvm_reader", "zero_based_gz", bytes([4, 1]) + gzip.compress(b"1 0:1 4:2\n0 1:3\n", mtime=0))
write("libsvm_reader", "bad_label", bytes([9, 0]) + b"2 1:1\n")
write("libsvm_reader", "bad_index", bytes([0x10 | 3, 0]) + b"1 0:1\n1 9:1\n1 x:1\n")
write("libsvm_reader", "three_classes", bytes([9, 0x80]) + b"1 1:1\n")


def idx(magic_dims, shape, payload):
    return struct.pack(">I", 0x800 | magic_dims) + b"".join(struct.pack(">I", s) for s in shape) + payload


def idx_input(b0, b1, images, labels):
    return bytes([b0, b1]) + struct.pack("<H", len(images)) + images + labels


# Byte 0 = 1 | (1 << 2): 2x2 images, 4 features.
IMAGES = idx(3, [2, 2, 2], bytes([0, 255, 1, 2, 3, 4, 5, 6]))
LABELS = idx(1, [2], bytes([1, 0]))
write("idx_reader", "good", idx_input(5, 0, IMAGES, LABELS))
write("idx_reader", "good_gz", idx_input(5, 1, gzip.compress(IMAGES, mtime=0), gzip.compress(LABELS, mtime=0)))
write("idx_reader", "bad_magic", idx_input(5, 0, idx(1, [2], b"\0\0"), LABELS))
write("idx_reader", "count_mismatch", idx_input(5, 0, IMAGES, idx(1, [3], bytes([1, 0, 1]))))
write("idx_reader", "huge_count", idx_input(5, 0, idx(3, [2**32 - 1, 2, 2], b"\0" * 8), LABELS))
write("idx_reader", "trailing", idx_input(5, 0, IMAGES + b"x", LABELS))
write("idx_reader", "label_too_big", idx_input(5, 0, IMAGES, idx(1, [2], bytes([1, 200]))))
write("idx_reader", "shape_mismatch", idx_input(0x80 | 5, 0, IMAGES, LABELS))
