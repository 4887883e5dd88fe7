# The report's code imports pycryptodome as "Crypto"; Debian packages it as
# "Cryptodome" (python3-pycryptodome). Alias it before the original code runs.
import sys
import Cryptodome
import Cryptodome.Cipher, Cryptodome.PublicKey, Cryptodome.Signature, Cryptodome.Hash, Cryptodome.Util, Cryptodome.Random
for name, mod in list(sys.modules.items()):
    if name == "Cryptodome" or name.startswith("Cryptodome."):
        sys.modules["Crypto" + name[len("Cryptodome"):]] = mod
