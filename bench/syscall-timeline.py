#!/usr/bin/env python3
"""A request's timeline on a server's event-loop thread at one connection, from
`perf record -e raw_syscalls:sys_enter,raw_syscalls:sys_exit` (bench/profile-small.ts
--trace). At one connection a request is: the loop sleeps in epoll_pwait until the
client's request arrives, reads it, works (parse, handler, response), writes the
answer, finishes up, and sleeps again. Per request (median µs over all of them):

  wake → read     epoll_pwait's return to the read's entry (libuv dispatch)
  read            the read system call
  read → write    parse, handler, response building: the server's part of the latency
  write           the write/writev system call (loopback: delivers to the client and wakes it)
  write → sleep   work after the answer left, until the loop sleeps again (off the latency)
  asleep          in epoll_pwait: the client's turn and both transits

    python3 bench/syscall-timeline.py [--fine] A-*.trace [-- B-*.trace ...]

x86-64 only: system calls are told apart by their x86-64 numbers (read 0,
write 1, writev 20, epoll_wait 232, epoll_pwait 281). The event-loop thread
is the one whose thread id is the process id (Linux's main thread). As
profile-buckets.py, it reads X.trace.txt (profile-small.ts's `perf script`
dump, with the JavaScript frames' names) when it exists.

When the recording has CPU samples too (profile-small.ts --trace records
both), each sample on the event-loop thread is placed in its phase and given
its bucket (bench/profile-buckets.py): what the loop does before the answer
leaves, and after. --fine: profile-buckets.py's own buckets (the kernel by
system call, Talus by module) instead of the coarse ones.
"""
import importlib.util
import os
import re
import subprocess
import sys
from collections import Counter
from statistics import median

_spec = importlib.util.spec_from_file_location('profile_buckets', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'profile-buckets.py'))
buckets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(buckets)

FINE = False
READ, WRITE, WRITEV, EPOLL_PWAIT, EPOLL_WAIT = 0, 1, 20, 281, 232
PHASES = ['wake → read', 'read', 'read → write', 'write', 'write → sleep', 'asleep']


def events(path):
    """(pid, tid, µs, kind, nr or frames): kind 'enter'/'exit' for system calls, 'sample' for CPU samples."""
    out = buckets.perf_script(path, 'pid,tid,time,event,trace,ip,sym,dso')
    current = None  # (pid, tid, t, frames) of a CPU sample whose stack lines follow

    def flush():
        if current is not None and current[3]:
            return [(current[0], current[1], current[2], 'sample', current[3])]
        return []

    for line in out.split('\n'):
        m = re.match(r'\s*(\d+)/(\d+)\s+([\d.]+):\s+(\S+?):?\s', line)
        if m:
            yield from flush()
            current = None
            pid, tid, t, event = int(m.group(1)), int(m.group(2)), float(m.group(3)) * 1e6, m.group(4)
            if event.startswith('raw_syscalls:sys_'):
                nr = re.search(r'NR (\d+)', line)
                if nr:
                    yield pid, tid, t, 'enter' if 'enter' in event else 'exit', int(nr.group(1))
            elif event.startswith('cpu-clock'):
                current = (pid, tid, t, [])
            continue
        f = re.match(r'\s+[0-9a-f]+ (.*) \((.*)\)$', line)
        if f and current is not None:
            current[3].append((f.group(1), f.group(2)))
    yield from flush()


def timeline(path):
    evs = list(events(path))
    if not evs:
        sys.exit('%s: no system call events or samples (recorded with profile-small.ts --trace?)' % path)
    # The event loop runs on the server's main thread, whose thread id is the process id (the
    # recording is of one server, `perf record -p`: its process is the one with the most events).
    main = Counter(pid for pid, *_ in evs).most_common(1)[0][0]
    phases = {p: [] for p in PHASES}
    samples = {'before the answer (wake → write)': Counter(), 'after the answer (write → sleep)': Counter()}
    last = {}
    state = 'asleep'
    for _pid, tid, t, kind, nr in evs:
        if tid != main:
            continue
        if kind == 'sample':
            name = buckets.bucket(nr) if FINE else buckets.coarse(buckets.bucket(nr))
            if state == 'before':
                samples['before the answer (wake → write)'][name] += 1
            elif state == 'after':
                samples['after the answer (write → sleep)'][name] += 1
            continue
        if nr in (EPOLL_PWAIT, EPOLL_WAIT):
            if kind == 'enter':
                last['sleep'] = t
                if 'write_exit' in last:
                    phases['write → sleep'].append(t - last.pop('write_exit'))
                    state = 'asleep'
            else:
                if 'sleep' in last and t - last['sleep'] > 5:  # a real sleep, not a poll that returned at once
                    phases['asleep'].append(t - last['sleep'])
                    last['wake'] = t
                    state = 'before'
        elif nr == READ:
            if kind == 'enter':
                last['read_enter'] = t
                if 'wake' in last:
                    phases['wake → read'].append(t - last.pop('wake'))
            elif 'read_enter' in last:
                phases['read'].append(t - last.pop('read_enter'))
                last['read_exit'] = t
        elif nr in (WRITE, WRITEV):
            if kind == 'enter':
                last['write_enter'] = t
                if 'read_exit' in last:
                    phases['read → write'].append(t - last.pop('read_exit'))
            elif 'write_enter' in last:
                phases['write'].append(t - last.pop('write_enter'))
                last['write_exit'] = t
                state = 'after'
    return phases, samples


def main(argv):
    global FINE
    if not [arg for arg in argv if arg not in ('--', '--fine')]:
        sys.exit('usage: python3 bench/syscall-timeline.py [--fine] A-*.trace [-- B-*.trace ...]  (x86-64 only)')
    groups, current = [], []
    for arg in argv:
        if arg == '--fine':
            FINE = True
        elif arg == '--':
            groups.append(current)
            current = []
        else:
            current.append(arg)
    groups.append(current)
    results, sampled = [], []
    for group in groups:
        merged = {p: [] for p in PHASES}
        counts = {}
        for path in group:
            phases, samples = timeline(path)
            for p, values in phases.items():
                merged[p].extend(values)
            for phase, c in samples.items():
                counts.setdefault(phase, Counter()).update(c)
        results.append(merged)
        sampled.append(counts)
    names = [g[0].rsplit('/', 1)[-1].rsplit('-', 1)[0] for g in groups]
    print('| phase (median µs) | ' + ' | '.join('%s (%d requests)' % (n, len(r['read → write'])) for n, r in zip(names, results)) + ' |')
    print('|---|' + '--:|' * len(groups))
    for p in PHASES:
        print('| %s | %s |' % (p, ' | '.join('%.1f' % median(r[p]) if r[p] else '' for r in results)))
    if any(sum(sum(c.values()) for c in counts.values()) for counts in sampled):
        print()
        print('| CPU samples on the loop, by phase and bucket | ' + ' | '.join(names) + ' |')
        print('|---|' + '--:|' * len(groups))
        keys = sorted({(phase, b) for counts in sampled for phase, c in counts.items() for b in c})
        for phase, b in keys:
            cells = []
            for counts in sampled:
                total = sum(sum(c.values()) for c in counts.values())
                cells.append('%.1f %%' % (100 * counts.get(phase, Counter())[b] / max(1, total)))
            print('| %s: %s | %s |' % (phase, b, ' | '.join(cells)))

if __name__ == '__main__':
    main(sys.argv[1:])
