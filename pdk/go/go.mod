module pulp.dev/pdk

go 1.24
