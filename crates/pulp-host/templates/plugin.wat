;; {{name}}: a Pulp plugin in WebAssembly text. `pulp run pulp.plugin.toml` runs it
;; as it is (the host compiles the text); docs/ABI.md is the contract.
(module
  (import "pulp" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $steps (mut i64) (i64.const 0))
  (data (i32.const 16) "{{name}}: started")
  (data (i32.const 512) "{{name}}: shutting down")

  ;; A bump allocator; freeing the newest block gives it back (the host frees in order).
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                                            (i32.const 65536)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "pulp_free") (param $p i32) (param $n i32)
    (if (i32.eq (i32.add (local.get $p) (local.get $n)) (global.get $heap))
      (then (global.set $heap (local.get $p)))))

  ;; cfg is the manifest's [config] as msgpack, (0, 0) when there is none.
  (func (export "pulp_init") (param $cfg i32) (param $len i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 16) (i32.const {{started_len}})))
    (i32.const 0))

  ;; in: 20-byte header (call number, wall time, payload length) + a msgpack event
  ;; or nothing (an idle tick). Return 0.
  (func (export "pulp_step") (param $in i32) (param $len i32) (result i32)
    (global.set $steps (i64.add (global.get $steps) (i64.const 1)))
    (i32.const 0))

  (func (export "pulp_shutdown") (result i32)
    (drop (call $log (i32.const 2) (i32.const 512) (i32.const {{stopping_len}})))
    (i32.const 0)))
