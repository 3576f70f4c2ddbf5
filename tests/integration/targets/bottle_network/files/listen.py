# A TCP listener of the test's own on every host address: records who connected, exits after a while.
import socket
import sys

port, record, lifetime = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(8)
srv.settimeout(lifetime)
with open(record, "a", buffering=1) as out:
    out.write("listening\n")
    try:
        while True:
            conn, addr = srv.accept()
            out.write("accepted %s\n" % addr[0])
            conn.close()
    except socket.timeout:
        pass
