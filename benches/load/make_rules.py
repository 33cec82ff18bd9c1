"""Writes the equivalent rule sets for the load benchmark into a folder:
a blocklist of N /24 networks (plus 127.0.0.2, the blocklisted test client) and P
path prefixes, in portcullis', nginx's and HAProxy's formats."""
import os
import sys

folder, cidrs, paths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(folder, exist_ok=True)
networks = [f"{(0x20000000 + i * 256) >> 24 & 255}.{(0x20000000 + i * 256) >> 16 & 255}.{(0x20000000 + i * 256) >> 8 & 255}.0/24" for i in range(cidrs - 1)]
networks.append("127.0.0.2/32")
with open(f"{folder}/blocklist.txt", "w") as out:
    out.write("\n".join(networks) + "\n")
with open(f"{folder}/blocklist-nginx.conf", "w") as out:
    out.writelines(f"{net} 1;\n" for net in networks)
with open(f"{folder}/paths-haproxy.txt", "w") as out:
    out.writelines(f"/blocked-{i}/\n" for i in range(paths))
with open(f"{folder}/paths-nginx.conf", "w") as out:
    out.writelines(f"location ^~ /blocked-{i}/ {{ return 403; }}\n" for i in range(paths))
with open(f"{folder}/paths-portcullis.toml", "w") as out:
    for i in range(paths):
        out.write(f'[[rule]]\nname = "deny-{i}"\npaths = ["/blocked-{i}/**"]\naction = "deny"\n')
