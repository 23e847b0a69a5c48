module pulp.plugin/{{name}}

go 1.24

require pulp.dev/pdk v0.0.0

// pulp-pdk/ is a copy of the Go SDK (pdk/go in pulp's repository).
replace pulp.dev/pdk => ./pulp-pdk
