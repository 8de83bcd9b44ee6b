"""The shared lower layer: what several components need and none of them owns.

Terraform (`terraform`, `stacks`), local processes and session records (`processes`,
`state`), our containers (`containers`), tarballs from elsewhere (`tarsafe`), CPU
splitting (`cpus`), duration text (`timefmt`), the HTTP client base (`http`) and
instance prices (`prices`). It imports only `cloudbench.protocol` and libraries, never
a component.
"""
