# Not in the report's appendices: a minimal TESLogger with the interface the
# appendix code calls (setup, log, get_recent_logs), printing to stdout.
import time


class TESLogger:
    _logs = []

    @staticmethod
    def setup():
        pass

    @staticmethod
    def log(msg, level="INFO"):
        line = f"{time.strftime('%H:%M:%S')} [{level}] {msg}"
        TESLogger._logs.append(line)
        print(line, flush=True)

    @staticmethod
    def get_recent_logs():
        return TESLogger._logs[-50:]
