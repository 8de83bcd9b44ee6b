require "harness"

run_benchmark(10) { sleep Float(ENV.fetch("FAKE_BENCH_SLEEP", "60")) }
