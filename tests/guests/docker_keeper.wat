;; Creates one long-lived container in pulp_init (spawn.docker) and returns
;; docker_create's status as init's: for the crash-and-restart cleanup tests.
(module
  (import "pulp" "docker_create" (func $create (param i32 i32 i32 i32) (result i32)))
  ;; @imports
  ;; @alloc
  (data (i32.const 1024) "\82\a5\69\6d\61\67\65\b3\70\75\6c\70\2d\74\65\73\74\2f\62\75\73\79\62\6f\78\3a\31\a3\63\6d\64\92\a5\73\6c\65\65\70\a4\33\36\30\30")
  (func (export "pulp_init") (param $p i32) (param $n i32) (result i32)
    (call $create (i32.const 1024) (i32.const 43) (i32.const 16) (i32.const 20)))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
