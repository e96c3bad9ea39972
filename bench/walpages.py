#!/usr/bin/env python3
"""Names the b-tree of each page that bench/walpages.c counted in the WAL, and prints frames per
event and per commit by b-tree, the most first.

Usage: walpages.py COUNTS DATABASE EVENTS

COUNTS is walpages.c's output, DATABASE the SQLite file after the run (checkpointed: the server
stopped), EVENTS the events the run stored. Pages are named from dbstat as the file is at the
end, so a page freed and reused by another b-tree during the run is named after the last one;
pages dbstat does not list (the freelist) are "freelist/other"; a b-tree's overflow pages (the
parts of rows too long for one page) are shown apart. Page 1 holds the file's header
(its size in pages changes whenever the file grows) as well as the root of sqlite_schema.
"""
import sqlite3
import sys


def main():
    counts_path, db_path, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    totals, page_frames = {}, {}
    with open(counts_path) as f:
        for line in f:
            fields = line.split()
            if fields[0] == "page":
                page_frames[int(fields[1])] = int(fields[2])
            else:
                totals[fields[0]] = int(fields[1])
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    owner = dict((pageno, name + (" (overflow)" if kind == "overflow" else ""))
                 for name, pageno, kind in db.execute("SELECT name, pageno, pagetype FROM dbstat"))
    owner[1] = "header (page 1)"
    frames, pages = {}, {}
    for pageno, n in page_frames.items():
        name = owner.get(pageno, "freelist/other")
        frames[name] = frames.get(name, 0) + n
        pages[name] = pages.get(name, 0) + 1
    commits = max(totals.get("commits", 0), 1)
    events = max(events, 1)
    print(f"  WAL by b-tree: {totals.get('frames', 0) / events:.2f} frames per event, "
          f"{totals.get('commits', 0)} commits ({events / commits:.1f} events each), "
          f"{totals.get('rewrites', 0)} frames rewritten in their commit")
    print(f"    {'b-tree':<34} {'per event':>9} {'per commit':>10} {'pages':>7}")
    for name in sorted(frames, key=lambda k: -frames[k]):
        print(f"    {name:<34} {frames[name] / events:9.3f} {frames[name] / commits:10.2f} "
              f"{pages[name]:7d}")


if __name__ == "__main__":
    main()
