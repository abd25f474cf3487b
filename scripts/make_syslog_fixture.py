"""Write PostgreSQL syslog output as rsyslog's traditional file format lays it out."""
import sys

PG_SYSLOG_LIMIT = 900
out = []
seq = {}
def write_syslog(t, pid, buf):
    # elog.c write_syslog: one sequence number per call, pieces at newlines and at 900 bytes
    seq[pid] = seq.get(pid, 0) + 1
    n = seq[pid]
    chunk = 0
    for line in buf.split("\n"):
        while True:
            chunk += 1
            if len(line) <= PG_SYSLOG_LIMIT:
                piece, line = line, ""
            else:
                cut = PG_SYSLOG_LIMIT
                if not line[cut].isspace():
                    i = cut - 1
                    while i > 0 and not line[i].isspace():
                        i -= 1
                    if i > 0:
                        cut = i
                piece, line = line[:cut], line[cut:]
            msg = piece.replace("\t", "#011")   # rsyslog escapes control characters
            out.append(f"{t} db1 postgres[{pid}]: [{n}-{chunk}] {msg}")
            if not line:
                break
PREFIX = "user={u},db={d},app={a} "
def pre(u="app", d="shop", a="web"):
    return PREFIX.format(u=u, d=d, a=a)
write_syslog("Jan  5 08:35:00", 4242, pre("", "", "") + "LOG:  database system is ready to accept connections")
write_syslog("Jan  5 08:35:01", 4301, pre() + "LOG:  duration: 12.345 ms  statement: SELECT id, total\n\tFROM orders\n\tWHERE customer_id = 42")
write_syslog("Jan  5 08:35:01", 4301, pre() + "LOG:  duration: 0.210 ms  execute <unnamed>: SELECT * FROM customers WHERE id = $1\n" + pre() + "DETAIL:  parameters: $1 = '7'")
long = "SELECT " + ", ".join(f"o.column_number_{i}" for i in range(120)) + " FROM orders o WHERE o.id = 1"
write_syslog("Jan  5 08:35:02", 4302, pre("report", "shop", "cron") + "LOG:  duration: 1503.000 ms  statement: " + long)
write_syslog("Jan  5 08:35:03", 4301, pre() + "ERROR:  relation \"missing\" does not exist at character 15\n" + pre() + "STATEMENT:  SELECT * FROM missing")
for k in range(3):
    write_syslog(f"Jan  5 08:35:0{4 + k}", 4301, pre() + f"LOG:  duration: {1.5 + k:.3f} ms  statement: SELECT id, total\n\tFROM orders\n\tWHERE customer_id = {k}")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
