;; A WAT inbound plugin: registers GET /hello/:name in pulp_init and answers every
;; http.request with status 200 and body "wat", copying the request id (the first
;; field of the payload, at a fixed offset of the step input) into its answer.
(module
  (import "pulp" "http_register" (func $register (param i32 i32) (result i32)))
  (import "pulp" "http_respond" (func $respond (param i32 i32) (result i32)))
  ;; @imports
  ;; @alloc
  ;; {method: "GET", path: "/hello/:name"}
  (data (i32.const 1024) "\82\a6method\a3GET\a4path\ac/hello/:name")
  (func (export "pulp_init") (param $p i32) (param $n i32) (result i32)
    (call $register (i32.const 1024) (i32.const 30)))
  ;; The length of the msgpack unsigned integer starting with byte $b (0 if it is not one).
  (func $uint_len (param $b i32) (result i32)
    (if (i32.lt_u (local.get $b) (i32.const 0x80)) (then (return (i32.const 1))))
    (if (i32.eq (local.get $b) (i32.const 0xcc)) (then (return (i32.const 2))))
    (if (i32.eq (local.get $b) (i32.const 0xcd)) (then (return (i32.const 3))))
    (if (i32.eq (local.get $b) (i32.const 0xce)) (then (return (i32.const 5))))
    (if (i32.eq (local.get $b) (i32.const 0xcf)) (then (return (i32.const 9))))
    (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (local $id i32) (local $len i32) (local $out i32)
    ;; 20-byte header, {kind: "http.request", payload: {id: ... : 31 bytes to the id value.
    (if (i32.lt_u (local.get $n) (i32.const 60)) (then (return (i32.const 0))))
    (if (i32.ne (i32.load8_u (i32.add (local.get $p) (i32.const 27))) (i32.const 0x68)) ;; 'h' of http.request
      (then (return (i32.const 0))))
    (local.set $id (i32.add (local.get $p) (i32.const 51)))
    (local.set $len (call $uint_len (i32.load8_u (local.get $id))))
    (if (i32.eqz (local.get $len)) (then (return (i32.const 0))))
    ;; {id: <copied>, status: 200, body: bin "wat"} built at 2048
    (local.set $out (i32.const 2048))
    (i32.store8 (local.get $out) (i32.const 0x83))
    (i32.store8 (i32.const 2049) (i32.const 0xa2))
    (i32.store16 (i32.const 2050) (i32.const 0x6469)) ;; "id"
    (memory.copy (i32.const 2052) (local.get $id) (local.get $len))
    (memory.copy (i32.add (i32.const 2052) (local.get $len)) (i32.const 1100) (i32.const 19))
    (drop (call $respond (i32.const 2048) (i32.add (i32.const 23) (local.get $len))))
    (i32.const 0))
  ;; status: 200, body: "wat"
  (data (i32.const 1100) "\a6status\cc\c8\a4body\c4\03wat")
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
