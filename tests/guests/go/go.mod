module pulp.example/heartbeat

go 1.24
