require "harness"

run_benchmark(10) do
  sum = 0
  200_000.times { |i| sum += i }
  sum
end
