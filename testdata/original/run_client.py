# Runs the original TrafficPoliceClient (Appendix 5) against argv[1]:argv[2]:
# log in as argv[3] with the password in $TES_PASSWORD, send one report
# (plate argv[4], speed argv[5]) and print the server's replies as JSON lines.
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sitecustomize_crypto  # noqa: F401
from client.police_client import TrafficPoliceClient

host, port, user, plate, speed = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
TrafficPoliceClient.PORT = port
c = TrafficPoliceClient(server_host=host)
print(json.dumps({"connect": c.connect()}), flush=True)
print(json.dumps({"login": c.login(user, os.environ["TES_PASSWORD"])}), flush=True)
# send_traffic_data prints the reply; send it ourselves to capture it.
data = json.dumps({"plate": plate, "speed": speed}).encode()
enc = c.des_manager.encrypt(data)
sig = c.rsa_manager.sign(enc)
c.send_message("DATA", enc.hex(), signature=sig.hex())
print(json.dumps({"data": c.receive_response()}), flush=True)
c.socket.close()
