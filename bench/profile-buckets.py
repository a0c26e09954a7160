#!/usr/bin/env python3
"""Splits `perf record -g` profiles of a Node server (run with --perf-basic-prof)
into the buckets issue 17's explanations use: the kernel (by system call),
node's HTTP (llhttp and node:_http_*), node's runtime (net, streams, timers,
promises), Talus's own code (by directory of dist/), SQLite, crypto/hashing, GC,
and what is left of V8 and libuv. Each sample is given to the first frame,
from the leaf up, that names a bucket; a sample whose leaf is in the kernel is
the kernel's, split by the system call it is under. A JavaScript frame in
Talus's dist/ is Talus's whatever its name (its own HMAC and Content-MD5
code count as Talus: SigV4 and s3), one in node:internal/crypto is crypto;
native frames are matched by symbol (OpenSSL, SQLite, llhttp, V8's GC).

    python3 bench/profile-buckets.py [--us=A_US,B_US] A-*.data [-- B-*.data ...]

For each X.data, X.data.txt is read when it exists: the `perf script` dump
profile-small.ts writes while the server's /tmp/perf-PID.map (the JavaScript
frames' names) still exists; otherwise `perf script` runs here, and names
JavaScript frames only if that map is still there.

--us: each group's CPU µs per request, to print each bucket's share in µs too.

Each group (separated by `--`) prints its shares of the samples, side by side.
Written with bench/profile-small.ts (see its header).
"""
import os
import re
import subprocess
import sys
from collections import Counter

SYSCALLS = {
    'read': 'socket read', 'readv': 'socket read', 'recvfrom': 'socket read', 'recvmsg': 'socket read',
    'write': 'socket write', 'writev': 'socket write', 'sendto': 'socket write', 'sendmsg': 'socket write',
    'epoll_wait': 'epoll wait', 'epoll_pwait': 'epoll wait', 'epoll_ctl': 'epoll ctl',
    'fdatasync': 'fsync', 'fsync': 'fsync', 'pwrite64': 'file read/write', 'pread64': 'file read/write',
    'openat': 'file open/stat', 'newfstatat': 'file open/stat', 'statx': 'file open/stat', 'fstat': 'file open/stat', 'close': 'file open/stat',
    'futex': 'futex', 'fcntl': 'file locks', 'accept4': 'accept',
}
GC = re.compile(r'v8::internal::(Heap::|Scavenger|ScavengeJob|MarkCompact|MinorMarkCompact|ConcurrentMarking|MarkingVisitor|IncrementalMarking|GCTracer|.*Sweeper|MemoryAllocator|Evacuat|PagedSpace|SemiSpace|YoungGeneration)')
SQLITE = re.compile(r'sqlite3|better_sqlite3|Statement::|Database::', re.I)
CRYPTO = re.compile(r'libcrypto|sha256|SHA256|HMAC|EVP_|OPENSSL|node::crypto::|ossl_|md5|MD5|blst|crypto_', re.I)
HTTP_NATIVE = re.compile(r'llhttp|node::.*Parser::|http_parser')


def bucket(frames):
    """frames: [(symbol, dso)] leaf first."""
    leaf_sym, leaf_dso = frames[0]
    if 'kernel.kallsyms' in leaf_dso:
        # The system call is named by the first user-space frame: libc's wrapper (the kernel's own
        # entry points are inlined on this kernel). No wrapper: an interrupt, a fault or the scheduler.
        user = next(((sym, dso) for sym, dso in frames if 'kernel.kallsyms' not in dso), None)
        if user is None or not any(s.startswith('entry_SYSCALL') for s, _ in frames):
            return 'kernel: interrupts, faults, scheduler'
        name = re.sub(r'^(__GI_|__libc_|__)+', '', user[0].split('+')[0]).lstrip('_')
        name = re.sub(r'(_nocancel|64)$', '', name) if name not in SYSCALLS else name
        return 'kernel: ' + SYSCALLS.get(name, SYSCALLS.get(name + '64', 'other syscall (%s)' % name))
    for sym, dso in frames:
        if sym.startswith('JS:'):
            # By file first: a Talus function named hmac or md5 is Talus's, node's crypto JS is crypto.
            m = re.search(r'file://\S*/dist/([\w-]+)/?([\w.-]*)', sym)
            if m:
                return 'Talus: ' + m.group(1) + ('/' + m.group(2) if m.group(1) in ('s3', 'http', 'auth') else '')
            if 'node:internal/crypto' in sym:
                return 'crypto/hashing'
        if GC.search(sym):
            return 'GC'
        if SQLITE.search(sym) or 'better_sqlite3' in dso:
            return 'SQLite (user space)'
        if CRYPTO.search(sym) or 'libcrypto' in dso:
            return 'crypto/hashing'
        if HTTP_NATIVE.search(sym):
            return "node's HTTP (parse, write)"
        if sym.startswith('JS:'):
            if 'bench/servers' in sym:
                return "bare server's handler"
            if re.search(r' node:_http|node:internal/http', sym):
                return "node's HTTP (parse, write)"
            if ' node:' in sym:
                return "node's runtime (net, streams, promises, timers)"
            if re.search(r'node_modules', sym):
                return 'dependencies (JS)'
    return 'V8 and libuv (builtins, IC, loop)'


def perf_script(path, fields):
    """`perf script -F fields` of a recording: its dump path + '.txt' if profile-small.ts wrote one, else perf's output."""
    if os.path.exists(path + '.txt'):
        with open(path + '.txt', encoding='utf-8', errors='replace') as dump:
            return dump.read()
    done = subprocess.run(['perf', 'script', '-i', path, '-F', fields], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit('perf script -i %s failed:\n%s' % (path, done.stderr.strip()))
    return done.stdout


def samples(path):
    out = perf_script(path, 'comm,tid,ip,sym,dso')
    for block in out.split('\n\n'):
        lines = [l for l in block.split('\n') if l.strip()]
        if len(lines) < 2:
            continue
        frames = []
        for line in lines[1:]:
            m = re.match(r'\s*[0-9a-f]+ (.*) \((.*)\)$', line)
            if m:
                frames.append((m.group(1), m.group(2)))
        if frames:
            yield frames


def main(argv):
    if not [arg for arg in argv if arg != '--' and not arg.startswith('--us=')]:
        sys.exit('usage: python3 bench/profile-buckets.py [--us=A_US,B_US] A-*.data [-- B-*.data ...]')
    groups, current, micros = [], [], None
    for arg in argv:
        if arg.startswith('--us='):
            micros = arg[5:]
            continue
        if arg == '--':
            groups.append(current)
            current = []
        else:
            current.append(arg)
    groups.append(current)
    counts = []
    for group in groups:
        c = Counter()
        for path in group:
            for frames in samples(path):
                c[bucket(frames)] += 1
        counts.append(c)
    cpu = [float(x) for x in micros.split(',')] if micros else None
    header = ' | '.join('%s (%d samples)' % (g[0].rsplit('/', 1)[-1].rsplit('-', 1)[0], sum(c.values())) for g, c in zip(groups, counts))

    def table(rows):
        print('| bucket | ' + header + ' |')
        print('|---|' + '--:|' * len(groups))
        for n in sorted({n for c in rows for n in c}, key=lambda n: -sum(c[n] / max(1, sum(c.values())) for c in rows)):
            cells = []
            for i, c in enumerate(rows):
                share = c[n] / max(1, sum(c.values()))
                cells.append('%.1f %%' % (100 * share) + (' (%.1f µs)' % (share * cpu[i]) if cpu else ''))
            print('| %s | %s |' % (n, ' | '.join(cells)))
        print()

    table(counts)
    table([Counter({coarse(n): 0 for n in c}) + sum((Counter({coarse(n): v}) for n, v in c.items()), Counter()) for c in counts])


def coarse(name):
    """The brief's buckets: the kernel, node's HTTP, node and V8 runtime, Talus's request logic, SQLite, crypto, GC."""
    if name.startswith('kernel: fsync'):
        return 'kernel: fsync'
    if name.startswith('kernel'):
        return 'kernel (sockets, epoll, wake-ups, other)'
    if name.startswith('Talus') or name.startswith("bare server"):
        return "server's own JS (Talus: routing, SigV4, authorize, engine)"
    if name.startswith("node's runtime") or name.startswith('V8 and libuv') or name.startswith('dependencies'):
        return 'node/V8 runtime (net, streams, promises, builtins, loop)'
    return name

if __name__ == '__main__':
    main(sys.argv[1:])
