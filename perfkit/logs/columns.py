"""A run of executions counted as columns, for the DuckDB walk (``perfkit.logs.duck``): what
``perfkit.logs.stream._Pass`` keeps of each execution (its shape's counters, the minute, the
database/user/application/client/type breakdown, the tenant, the plan pairing per process, the
requests of N+1), made by numpy and Arrow over many executions at once instead of by Python one
at a time.

The result is the one-at-a-time pass's, bit for bit: the sums are made in file order, one
execution after another (``numpy.add.at``, not a pairwise sum), the slowest execution of a shape
is the first of its longest ones, new cells are made in the order their first execution comes.
What depends on each execution's predecessors as it comes (N+1 requests, a plan waiting for its
execution, a tenant found in a statement's parameters) is still walked in Python, in order.
"""

from __future__ import annotations


class Run:
    """``n`` executions in file order. ``sid`` (numpy int64): the pass's index of each execution's
    shape slot (``_Pass.keyed``); ``free`` (numpy bool): no tenant whatever the parameters; ``d``
    (numpy float64): the duration (every execution DuckDB tells has one: a missing one is an entry
    ``_Pass.feed`` reads); ``line`` and ``text``: Python lists;
    the other columns Arrow arrays (null where the entry had no value)."""

    __slots__ = ("n", "sid", "free", "d", "ts", "pid", "session", "application", "database", "user", "client",
                 "line", "text", "detail", "shapes", "shape", "_py", "_arrow")

    def __init__(self, n, sid, free, d, ts, pid, session, application, database, user, client, line, text, detail,
                 shapes: list, shape):
        self.n, self.sid, self.free, self.d = n, sid, free, d
        # each execution's own shape (what N+1 names it by): shapes[shape[row]], the Normalized of
        # its text (texts of one shape key may be spelled apart)
        self.shapes, self.shape = shapes, shape
        self.ts, self.pid, self.session, self.application = ts, pid, session, application
        self.database, self.user, self.client = database, user, client
        self.line, self.text, self.detail = line, text, detail
        self._py: dict = {}
        self._arrow: dict = {}

    def py(self, name: str) -> list:
        """The column as a Python sequence."""
        found = self._py.get(name)
        if found is None:
            value = getattr(self, name)
            found = self._py[name] = value.to_pylist() if hasattr(value, "to_pylist") else value
        return found

    def strings(self, name: str):
        """The (Arrow) column with its nulls as ''."""
        import pyarrow.compute as pc

        found = self._arrow.get(name)
        if found is None:
            value = getattr(self, name)
            found = self._arrow[name] = pc.fill_null(value, "") if value.null_count else value
        return found


def _codes(values):
    """``(codes, distinct values)`` of an Arrow array: numpy int64 codes, values in first-seen order."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values, null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False).astype("int64", copy=False), encoded.dictionary


def _groups(*codes):
    """The groups of rows that share every code: ``(first row of each group, group of each row)``,
    the groups numbered in the order of their first row (hashed by Arrow: no sort)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    code = codes[0]
    for other in codes[1:]:
        width = int(other.max()) + 1 if len(other) else 1
        if (int(code.max()) + 1) * width >= 1 << 62:
            code = _dense(code)
        code = code * width + other
    group = pc.dictionary_encode(pa.array(code)).indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    # a group's first row: where the highest group so far goes up (they are numbered as they come)
    highest = np.maximum.accumulate(group)
    first = np.flatnonzero(np.diff(highest, prepend=-1) > 0)
    return first, group


def _dense(code):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.dictionary_encode(pa.array(code)).indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _sums(start: list[float], group, values):
    """``start[g] + values of group g``, added one after the other in row order (as ``+=`` would)."""
    import numpy as np

    out = np.array(start, dtype=np.float64)
    np.add.at(out, group, values)
    return out.tolist()


def run(one, r: Run) -> None:
    """Count the executions of ``r`` into the pass ``one`` (a ``stream._Pass``)."""
    import numpy as np

    from perfkit.logs import stream

    n = r.n
    if not n:
        return
    scan = one.scan
    d = r.d
    rows = np.arange(n)

    # -- per shape ------------------------------------------------------------------------------
    first, group = _groups(r.sid)
    slots = [one.keyed[int(r.sid[i])] for i in first]
    calls = np.bincount(group, minlength=len(first)).tolist()
    totals = _sums([s[2].total_ms for s in slots], group, d)
    slow = d >= one.slow_ms
    slow_calls = np.bincount(group, weights=slow, minlength=len(first)).astype(int).tolist()
    any_slow = bool(slow.any())
    if any_slow:
        slow_totals = _sums([s[2].slow_total for s in slots], group, np.where(slow, d, 0.0))
        slow_overs = _sums([s[2].slow_over for s in slots], group, np.where(slow, d - one.slow_ms, 0.0))
    # the longest of each shape, and the first row that took it
    longest = np.full(len(first), -np.inf)
    np.maximum.at(longest, group, d)
    at_longest = np.flatnonzero(d == longest[group])
    first_longest = np.full(len(first), n, dtype=np.int64)
    np.minimum.at(first_longest, group[at_longest], at_longest)
    # the log times: the first and last of each shape (text order, as str comparisons)
    ts = r.strings("ts")
    spans = _ts_spans(ts, group, len(first))
    # the histogram bins of the distinct durations
    bins = _bins(one, d, group)
    texts = None
    for index, slot in enumerate(slots):
        stats = slot[2]
        stats.calls += calls[index]
        low, high = spans[index]
        if high is not None:
            if high > stats.last_ts:
                stats.last_ts = high
            if low < stats.first_ts or not stats.first_ts:
                stats.first_ts = low
        stats.timed += calls[index]
        stats.total_ms = totals[index]
        top = float(longest[index])
        if top > stats.max_ms or stats.worst is None:
            row = int(first_longest[index]) if top > stats.max_ms else int(first[index])
            stats.max_ms = max(stats.max_ms, top)
            if texts is None:
                texts, times, users, databases = r.py("text"), r.py("ts"), r.py("user"), r.py("database")
                applications, sessions, pids, lines = r.py("application"), r.py("session"), r.py("pid"), r.py("line")
            stats.worst = [float(d[row]), times[row] or "", texts[row], stream._known(users[row]),
                           stream._known(databases[row]), stream._known(applications[row] or ""),
                           sessions[row] or "", pids[row], one.file, lines[row], ""]
        for bin_index, count in bins.get(index, ()):
            stats.bins[bin_index] = stats.bins.get(bin_index, 0) + count
        if slow_calls[index]:
            stats.slow_calls += slow_calls[index]
            stats.slow_total = slow_totals[index]
            stats.slow_over = slow_overs[index]
    scan.empty_statements += r.py("text").count("")

    # -- per minute, and per database, user, application, client and statement type -------------
    _minutes(one, ts, d)
    _combos(one, r, slots, group, d)
    # -- per tenant ------------------------------------------------------------------------------
    _tenants(one, r, slots, group, d)

    # -- in order: plans, the processes' last executions, N+1 requests ---------
    file = one.file
    pids, lines, sids = r.py("pid"), r.py("line"), r.sid.tolist()
    keyed = one.keyed
    last_exec, seen = one.last_exec, one.seen_exec
    head = scan.head_execs if one.unit.index else None
    if one.pending_plan:
        pending_plan = one.pending_plan
        for row in range(n):
            pid = pids[row]
            key, _shape, stats, _kind, fingerprint = keyed[sids[row]]
            has_plan = False
            if pending_plan:
                pending = pending_plan.pop(pid, None)
                if pending is not None and pending[0] == fingerprint:
                    one._attach(stats, lines[row], pending[1])
                    has_plan = True
            if pid not in seen:
                if head is not None and not has_plan:
                    head[pid] = (fingerprint, key, file, lines[row])
                seen.add(pid)
            last_exec[pid] = (fingerprint, key, file, lines[row], has_plan)
    else:
        by_pid, pid_group = _groups(_codes(r.pid)[0])
        last = np.zeros(len(by_pid), dtype=np.int64)
        np.maximum.at(last, pid_group, rows)
        for start, end in zip(by_pid.tolist(), last.tolist(), strict=True):
            pid = pids[start]
            if pid not in seen:
                if head is not None:
                    key, _shape, _stats, _kind, fingerprint = keyed[sids[start]]
                    head[pid] = (fingerprint, key, file, lines[start])
                seen.add(pid)
            key, _shape, _stats, _kind, fingerprint = keyed[sids[end]]
            last_exec[pid] = (fingerprint, key, file, lines[end], False)
    requests = one.requests
    if requests is None:
        return
    add, epoch_ms = requests.add, stream._epoch_ms
    texts_, times, sessions, applications = r.py("text"), r.py("ts"), r.py("session"), r.py("application")
    shapes = r.shapes
    for sid, shape, text, ts_, duration, session, pid, application in zip(
            sids, r.shape.tolist(), texts_, times, d.tolist(), sessions, pids, applications, strict=True):
        if text:
            add(session or f"{file}:{pid}", ts_ or "", duration, keyed[sid][0], shapes[shape], text, application or "",
                epoch_ms)


def _ts_spans(ts, group, groups: int) -> list[tuple]:
    """``(first, last)`` log time text of each group, (None, None) for a group without one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    known = pc.not_equal(ts, "")
    table = pa.table({"g": group, "ts": ts})
    if known.false_count:
        table = table.filter(known)
    spans: list[tuple] = [(None, None)] * groups
    if not table.num_rows:
        return spans
    found = table.group_by("g", use_threads=False).aggregate([("ts", "min"), ("ts", "max")])
    for g, low, high in zip(found.column("g").to_pylist(), found.column("ts_min").to_pylist(),
                            found.column("ts_max").to_pylist(), strict=True):
        spans[g] = (low, high)
    return spans


def _bins(one, d, group) -> dict[int, list]:
    """group -> [(histogram bin, executions)] of its executions."""
    import numpy as np

    values, inverse = np.unique(d, return_inverse=True)
    bin_of = one.bin_of
    per_value = []
    for value in values.tolist():
        index = bin_of.get(value)
        if index is None:
            index = one._bin(value)
        per_value.append(index)
    bins = np.asarray(per_value, dtype=np.int64)
    local, bin_code = np.unique(bins, return_inverse=True)
    code = group * len(local) + bin_code[inverse.reshape(-1)]
    codes, counts = np.unique(code, return_counts=True)
    out: dict[int, list] = {}
    width = len(local)
    for value, count in zip(codes.tolist(), counts.tolist(), strict=True):
        out.setdefault(value // width, []).append((int(local[value % width]), count))
    return out


def _minutes(one, ts, d0) -> None:
    """Executions and their time per minute of the log time (``stream._minute``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    head = pc.utf8_slice_codeunits(ts, 0, 16)
    # the zone: what follows the first space after the seconds (stream._minute), found once per
    # distinct tail of the text (a few thousand at most: the milliseconds and the zone)
    tail_codes, tails = _codes(pc.utf8_slice_codeunits(ts, 19))
    zones_of_tails = []
    for tail in tails.to_pylist():
        space = tail.find(" ")
        zones_of_tails.append(tail[space + 1:] if space >= 0 else "")
    zone = pa.array(zones_of_tails, pa.string()).take(pa.array(tail_codes))
    head_codes, heads = _codes(head)
    zone_codes, zones = _codes(zone)
    first, group = _groups(head_codes, zone_codes)
    heads, zones = heads.to_pylist(), zones.to_pylist()
    minutes = one.scan.minutes
    cells = []
    for row in first.tolist():
        key = (heads[head_codes[row]], zones[zone_codes[row]])
        cell = minutes.get(key)
        if cell is None:
            cell = minutes[key] = [0, 0.0]
        cells.append(cell)
    _count_into(cells, group, d0)


def _count_into(cells: list, group, d0) -> None:
    import numpy as np

    counts = np.bincount(group, minlength=len(cells)).tolist()
    sums = _sums([c[1] for c in cells], group, d0)
    for cell, count, total in zip(cells, counts, sums, strict=True):
        cell[0] += count
        cell[1] = total


def _combos(one, r: Run, slots: list, group, d0) -> None:
    import numpy as np

    kinds = {}
    kind_of_group = np.asarray([kinds.setdefault(s[3], len(kinds)) for s in slots], dtype=np.int64)
    names = ("database", "user", "application", "client")
    coded = [_codes(r.strings(name)) for name in names]
    first, combo = _groups(*(c for c, _ in coded), kind_of_group[group])
    values = [v.to_pylist() for _, v in coded]
    kind_names = list(kinds)
    combos = one.scan.combos
    cells = []
    for row in first.tolist():
        key = (*(values[i][coded[i][0][row]] for i in range(4)), kind_names[kind_of_group[group[row]]])
        cell = combos.get(key)
        if cell is None:
            cell = combos[key] = [0, 0.0]
        cells.append(cell)
    _count_into(cells, combo, d0)


def _tenants(one, r: Run, slots: list, group, d0) -> None:
    """The executions' cost per tenant: none for a text without a tenant whatever its parameters
    (the common case, counted at once); the others one by one, in order (``_Pass._tenant_row``)."""
    import numpy as np

    from perfkit.logs import stream

    free = r.free
    start = 0
    if one._no_tenant is None:
        # the first execution without a tenant makes its cell (as _Pass._tenant does)
        one._tenant_row(r.py("text")[0], r.py("detail")[0], slots[int(group[0])][0], float(r.d[0]), bool(free[0]))
        start = 1
    cell = one._no_tenant
    if cell is None or not free[start:].all():
        texts, details, d, keyed = r.py("text"), r.py("detail"), r.d.tolist(), one.keyed
        for row in range(start, r.n):
            one._tenant_row(texts[row], details[row], keyed[int(r.sid[row])][0], d[row], bool(free[row]))
        return
    group, d0 = group[start:], d0[start:]
    if not len(group):
        return
    cell[0] += len(group)
    cell[1] = _sums([cell[1]], np.zeros(len(group), dtype=np.int64), d0)[0]
    if len(cell[2]) < stream._TENANT_SHAPES:
        # the shapes in the order their first execution comes
        found, where = np.unique(group, return_index=True)
        for index in found[np.argsort(where, kind="stable")].tolist():
            if len(cell[2]) >= stream._TENANT_SHAPES:
                break
            cell[2].add(slots[index][0])
