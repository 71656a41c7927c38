#!/usr/bin/env python3
"""Counts the test cases of one `bazel test` run: prints "passed failed skipped".

usage: count_results.py TESTLOGS_DIR BAZEL_OUTPUT_FILE

The targets are the ones Bazel's summary in BAZEL_OUTPUT_FILE lists (lines such as
"//common:packing_test   PASSED in 0.3s"). Each gtest <testcase> in a target's
test.xml counts once; a target without cases, or that did not build or timed out,
counts as one failure.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

SUMMARY = re.compile(r"^(//\S+)\s+(?:\(cached\) )?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|"
                     r"FAILED TO BUILD|INCOMPLETE|REMOTE FAILURE)")


def count_xml(path):
    tree = ET.parse(path)
    passed = failed = skipped = 0
    for case in tree.getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(testlogs, output_file):
    totals = [0, 0, 0]
    with open(output_file, errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        m = SUMMARY.match(line)
        if not m:
            continue
        target, verdict = m.groups()
        package, _, name = target[2:].partition(":")
        xml = os.path.join(testlogs, package, name, "test.xml")
        counts = (0, 0, 0)
        if verdict in ("PASSED", "FAILED", "FLAKY") and os.path.exists(xml):
            try:
                counts = count_xml(xml)
            except ET.ParseError:
                counts = (0, 0, 0)
        if sum(counts) == 0:
            counts = (1, 0, 0) if verdict == "PASSED" else (0, 1, 0)
        elif verdict != "PASSED" and counts[1] == 0:
            counts = (counts[0], 1, counts[2])  # Crashed after its cases, say.
        for i in range(3):
            totals[i] += counts[i]
    print(*totals)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
