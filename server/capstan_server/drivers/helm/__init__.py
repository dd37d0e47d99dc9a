"""The `helm` driver: the official helm binary for writes, Helm's own release records for reads.

`driver.HelmDriver` is the entry point (`capstan_server.drivers.create_driver("helm", ...)`);
`command` runs helm, `records` decodes its release records, `kube` reads the Kubernetes API
and `manifest` names and judges the objects of a release.
"""
