# Runs the original TrafficOfficerServer (Appendix 3) on the port given as
# argv[1], in the current directory (it writes data/ there).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sitecustomize_crypto  # noqa: F401
from server.traffic_officer import TrafficOfficerServer

TrafficOfficerServer.PORT = int(sys.argv[1])
TrafficOfficerServer.HOST = "127.0.0.1"
TrafficOfficerServer().start()
