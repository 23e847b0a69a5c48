module pulp.example/api

go 1.24

require pulp.dev/pdk v0.0.0

replace pulp.dev/pdk => ../../../pdk/go
