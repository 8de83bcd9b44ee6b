require "harness"

def fib(n) = n < 2 ? n : fib(n - 1) + fib(n - 2)

run_benchmark(10) { fib(20) }
