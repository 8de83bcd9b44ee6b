require "harness"

# A few steps of a two-body float simulation (config/local.json names nbody).
run_benchmark(10) do
  x, y, vx, vy = 1.0, 0.0, 0.0, 1.0
  20_000.times do
    r3 = (x * x + y * y)**1.5
    vx -= x / r3 * 0.001
    vy -= y / r3 * 0.001
    x += vx * 0.001
    y += vy * 0.001
  end
  x
end
