"""Charts of the registered repositories: index fetch and cache (`repo_index`), Helm's semver
constraints (`semver`), archive download and reading (`archive`), and resolution of a chart
reference to an installable `ChartSource` (`catalog`)."""
