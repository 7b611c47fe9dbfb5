"""How a Kubernetes stage pod runs a stage without database or storage credentials.

The operator gives each stage Job a token for exactly one attempt (`tokens`). With it the pod asks the
API (`endpoints`) for its input and for signed URLs of the source and of each output, and reports its
progress and result; the API records them through the same `DirectStageHost` a local stage process
uses. `client.ApiStageHost` is the pod's side.
"""
