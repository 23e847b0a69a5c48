;; Attacks on the typed-import layer (pulp_ext::Import, pulp_ext::mem): i32::MIN and
;; -1 lengths and pointers for every argument kind (Str, BytesMut, Msgpack, Out),
;; out-pointers at the very top of memory, inside the request and on each other, and
;; a pulp_alloc that lies (returns the out-pointers, the top edge, one past it,
;; -1), traps, grows memory, and re-enters host imports once and without bound.
;; Every status and the values the guest sees are recorded as 4-byte records, in
;; the order tests/tests/attack_typed_imports.rs expects. Memory starts at 2 pages.
(module
  (import "pulp" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "pulp" "entropy_fill" (func $entropy_fill (param i32 i32) (result i32)))
  (import "pulp" "entropy_read" (func $entropy_read (param i32 i32 i32 i32) (result i32)))
  (import "pulp" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "pulp" "test_record" (func $record (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; {"n": 4}, four copies: some calls overwrite theirs.
  (data (i32.const 240) "\81\a1n\04")
  (data (i32.const 300) "\81\a1n\04")
  (data (i32.const 400) "\81\a1n\04")
  (data (i32.const 500) "\81\a1n\04")
  (global $heap (mut i32) (i32.const 65536))
  ;; 0 bump; 1 return $ret; 2 the exact top edge; 3 one byte past it; 4 grow 4 pages
  ;; and return the old top; 5 trap; 6 re-enter entropy_read once; 7 re-enter
  ;; entropy_read without bound; 8 re-enter last_error without bound.
  (global $mode (mut i32) (i32.const 0))
  (global $ret (mut i32) (i32.const 0))
  (global $inner (mut i32) (i32.const -100))
  (global $depth (mut i32) (i32.const 0))
  (global $max (mut i32) (i32.const 0))

  (func $rec (param $v i32)
    (i32.store (i32.const 0) (local.get $v))
    (drop (call $record (i32.const 0) (i32.const 4))))

  (func $bump (param $n i32) (result i32)
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

  (func $deeper
    (global.set $depth (i32.add (global.get $depth) (i32.const 1)))
    (if (i32.gt_u (global.get $depth) (global.get $max))
      (then (global.set $max (global.get $depth)))))

  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $top i32)
    (local.set $top (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.eq (global.get $mode) (i32.const 1)) (then (return (global.get $ret))))
    (if (i32.eq (global.get $mode) (i32.const 2))
      (then (return (i32.sub (local.get $top) (local.get $n)))))
    (if (i32.eq (global.get $mode) (i32.const 3))
      (then (return (i32.add (i32.sub (local.get $top) (local.get $n)) (i32.const 1)))))
    (if (i32.eq (global.get $mode) (i32.const 4))
      (then
        (drop (memory.grow (i32.const 4)))
        (return (local.get $top))))
    (if (i32.eq (global.get $mode) (i32.const 5)) (then unreachable))
    (if (i32.eq (global.get $mode) (i32.const 6))
      (then
        (global.set $mode (i32.const 0))
        (global.set $inner
          (call $entropy_read (i32.const 400) (i32.const 4) (i32.const 32) (i32.const 36)))))
    (if (i32.eq (global.get $mode) (i32.const 7))
      (then
        (call $deeper)
        (drop (call $entropy_read (i32.const 500) (i32.const 4) (i32.const 40) (i32.const 44)))
        (global.set $depth (i32.sub (global.get $depth) (i32.const 1)))))
    (if (i32.eq (global.get $mode) (i32.const 8))
      (then
        (call $deeper)
        (drop (call $last_error (i32.const 48) (i32.const 52)))
        (global.set $depth (i32.sub (global.get $depth) (i32.const 1)))))
    (call $bump (local.get $n)))

  (func (export "pulp_free") (param i32 i32))

  ;; entropy_read of the request at 240 into the out-pointers (po, pl).
  (func $read (param $po i32) (param $pl i32) (result i32)
    (call $entropy_read (i32.const 240) (i32.const 4) (local.get $po) (local.get $pl)))

  (func (export "pulp_init") (param i32 i32) (result i32)
    ;; [0, 1] A good call, and its result length n.
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (call $rec (i32.load (i32.const 12)))

    ;; [2..9] Str (log): i32::MIN and -1 lengths and pointers, the last byte, one past it.
    (call $rec (call $log (i32.const 2) (i32.const 0) (i32.const 0x80000000)))
    (call $rec (call $log (i32.const 2) (i32.const 0x80000000) (i32.const 4)))
    (call $rec (call $log (i32.const 2) (i32.const -1) (i32.const 1)))
    (call $rec (call $log (i32.const 2) (i32.const -1) (i32.const -1)))
    (call $rec (call $log (i32.const 2) (i32.const 0x80000000) (i32.const 0x80000000)))
    (call $rec (call $log (i32.const 2) (i32.const 131071) (i32.const 1)))
    (call $rec (call $log (i32.const 2) (i32.const 131071) (i32.const 2)))
    (call $rec (call $log (i32.const 2) (i32.const 0x80000000) (i32.const 0)))

    ;; [10..13] BytesMut (entropy_fill): the top 16 bytes, one past, i32::MIN, -1.
    (call $rec (call $entropy_fill (i32.const 131056) (i32.const 16)))
    (call $rec (call $entropy_fill (i32.const 131057) (i32.const 16)))
    (call $rec (call $entropy_fill (i32.const 0x80000000) (i32.const 0x80000000)))
    (call $rec (call $entropy_fill (i32.const 1024) (i32.const -1)))

    ;; [14..16] Msgpack (entropy_read's request): i32::MIN and -1.
    (call $rec (call $entropy_read (i32.const 240) (i32.const 0x80000000) (i32.const 8) (i32.const 12)))
    (call $rec (call $entropy_read (i32.const 240) (i32.const -1) (i32.const 8) (i32.const 12)))
    (call $rec (call $entropy_read (i32.const -1) (i32.const 4) (i32.const 8) (i32.const 12)))

    ;; [17, 18] Out: both out-pointers in the last 8 bytes of memory: fine.
    (call $rec (call $read (i32.const 131068) (i32.const 131064)))
    (call $rec (i32.load (i32.const 131064)))
    ;; [19] the heap before the bad out-pointers; [20..24] each is 8; [25] the heap
    ;; after: a refused out-pointer allocates nothing.
    (call $rec (global.get $heap))
    (call $rec (call $read (i32.const 131069) (i32.const 8)))
    (call $rec (call $read (i32.const 8) (i32.const 131069)))
    (call $rec (call $read (i32.const 0x80000000) (i32.const 8)))
    (call $rec (call $read (i32.const -4) (i32.const 8)))
    (call $rec (call $read (i32.const 8) (i32.const -1)))
    (call $rec (global.get $heap))
    ;; [26, 27] Out-pointers inside the request itself, overlapping each other.
    (call $rec (call $entropy_read (i32.const 300) (i32.const 4) (i32.const 300) (i32.const 302)))
    (call $rec (i32.load (i32.const 302)))
    ;; [28, 29] One address for both out-pointers: the length is written last.
    (call $rec (call $read (i32.const 16) (i32.const 16)))
    (call $rec (i32.load (i32.const 16)))

    ;; [30..32] pulp_alloc returns the out-pointers' own address.
    (global.set $mode (i32.const 1))
    (global.set $ret (i32.const 8))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (call $rec (i32.load (i32.const 8)))
    (call $rec (i32.load (i32.const 12)))
    ;; [33, 34] pulp_alloc returns -1 and i32::MIN: 7.
    (global.set $ret (i32.const -1))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (global.set $ret (i32.const 0x80000000))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    ;; [35, 36] The exact top edge is fine; [37] one byte past it is 7.
    (global.set $mode (i32.const 2))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (call $rec (i32.load (i32.const 8)))
    (global.set $mode (i32.const 3))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    ;; [38] pulp_alloc traps: 7; [39] the instance still works.
    (global.set $mode (i32.const 5))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (global.set $mode (i32.const 0))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    ;; [40..42] pulp_alloc grows memory by 4 pages and returns the old top: the
    ;; result lands in the new pages.
    (global.set $mode (i32.const 4))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (call $rec (memory.size))
    (call $rec (i32.load (i32.const 8)))
    ;; [43, 44] pulp_alloc re-enters entropy_read once: both calls succeed.
    (global.set $mode (i32.const 6))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (call $rec (global.get $inner))
    ;; [45, 46] pulp_alloc re-enters entropy_read without bound: the guest's stack
    ;; runs out somewhere down; [47] the instance still works afterwards.
    (global.set $mode (i32.const 7))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (global.set $mode (i32.const 0))
    (call $rec (global.get $max))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    ;; [48, 49, 50] The same through last_error.
    (global.set $max (i32.const 0))
    (global.set $mode (i32.const 8))
    (call $rec (call $last_error (i32.const 8) (i32.const 12)))
    (global.set $mode (i32.const 0))
    (call $rec (global.get $max))
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (i32.const 0))

  (func (export "pulp_step") (param i32 i32) (result i32)
    (call $rec (call $read (i32.const 8) (i32.const 12)))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
