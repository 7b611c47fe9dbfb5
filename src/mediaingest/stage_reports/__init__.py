"""How a Kubernetes stage pod runs a stage without database or storage credentials.

A stage pod proves which one attempt it runs with its projected ServiceAccount token (`identity`); then it asks the
API (`endpoints`) for its input and for signed URLs of the source and of each output, and reports its
progress and result; the API records them through the same `DirectStageHost` a local stage process
uses. `client.ApiStageHost` is the pod's side, and `one_shot` the pod's `mediaingest run-stage`.
"""
