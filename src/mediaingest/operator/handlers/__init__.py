"""The operator's logic; `mediaingest.operator.main` only registers these with kopf."""
