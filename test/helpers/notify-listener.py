"""A stand-in for systemd's notification socket: binds a unix datagram socket, prints one JSON
line per datagram with the sender's PID (SCM_CREDENTIALS, as systemd checks NotifyAccess=main)
and its text. Exits when stdin closes or after the given number of seconds."""
import json, os, select, socket, struct, sys

path, limit = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": path}), flush=True)
import time
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    r, _, _ = select.select([s, sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
    if sys.stdin in r and not sys.stdin.buffer.read1(1):
        break
    if s in r:
        data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        print(json.dumps({"pid": pid, "text": data.decode()}), flush=True)
os.unlink(path)
