require "harness"

run_benchmark(10) { (1..20_000).map(&:to_s).join(",").size }
