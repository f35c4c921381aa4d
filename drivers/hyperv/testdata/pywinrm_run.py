# Runs one command line on a WinRM endpoint with pywinrm (Debian's python3-winrm), an
# independent implementation of the client side of MS-WSMV, and prints the result as
# JSON. Usage: pywinrm_run.py URL USER CA_FILE OPERATION_TIMEOUT_SEC COMMAND_LINE
# (the password comes from $PYWINRM_PASSWORD, the transport from $PYWINRM_TRANSPORT:
# basic or ntlm).
import json
import os
import sys

from winrm.exceptions import InvalidCredentialsError
from winrm.protocol import Protocol

url, user, ca, op_timeout, cmdline = sys.argv[1:6]
p = Protocol(endpoint=url, transport=os.environ.get("PYWINRM_TRANSPORT", "basic"), username=user, password=os.environ["PYWINRM_PASSWORD"],
             server_cert_validation="validate", ca_trust_path=ca,
             operation_timeout_sec=int(op_timeout), read_timeout_sec=int(op_timeout) + 10)
try:
    shell = p.open_shell()
except InvalidCredentialsError as e:
    print(json.dumps({"error": "InvalidCredentialsError", "detail": str(e)}))
    sys.exit(0)
prog, args = cmdline.split(" ", 1)
cid = p.run_command(shell, prog, args.split(" "))
out, err, code = p.get_command_output(shell, cid)
p.cleanup_command(shell, cid)
p.close_shell(shell)
print(json.dumps({"shell_id": shell, "command_id": cid, "stdout": out.decode(), "stderr": err.decode(), "code": code}))
