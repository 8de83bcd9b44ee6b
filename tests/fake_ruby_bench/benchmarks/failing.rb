require "harness"

run_benchmark(10) { raise "failing benchmark: fails on purpose" }
