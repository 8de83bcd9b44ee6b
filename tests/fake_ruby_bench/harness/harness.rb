# Minimal benchmark harness: times iterations and writes RESULT_JSON_PATH.
require "json"

def fake_rss_bytes
  File.read("/proc/self/status")[/VmRSS:\s+(\d+)/, 1].to_i * 1024
rescue StandardError
  0
end

def run_benchmark(_num_itrs_hint = nil)
  warmup_itrs = Integer(ENV.fetch("WARMUP_ITRS", "1"))
  min_itrs = Integer(ENV.fetch("MIN_BENCH_ITRS", "2"))
  min_time = Integer(ENV.fetch("MIN_BENCH_TIME", "0")) # whole seconds, like the real one
  yjit = defined?(RubyVM::YJIT) && RubyVM::YJIT.respond_to?(:enabled?) && RubyVM::YJIT.enabled?
  puts RUBY_DESCRIPTION
  puts "itr:   time"
  times = []
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  loop do
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    yield
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    times << elapsed
    puts format(" #%d: %5dms", times.size, (elapsed * 1000).round)
    $stdout.flush
    total = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    break if times.size >= warmup_itrs + min_itrs && total >= min_time
  end
  warmup = times.first(warmup_itrs)
  bench = times.drop(warmup_itrs)
  rss = fake_rss_bytes
  puts format("RSS: %.1fMiB", rss / 1024.0 / 1024)
  avg = bench.sum / [bench.size, 1].max
  puts format("Average of last %d, non-warmup iters: %dms", bench.size, (avg * 1000).round)
  result = {
    "RUBY_DESCRIPTION" => RUBY_DESCRIPTION, "warmup" => warmup, "bench" => bench,
    "rss_samples" => [rss] * bench.size, "rss" => rss, "maxrss" => rss,
  }
  result["yjit_stats"] = { "inline_code_size" => 0, "outlined_code_size" => 0 } if yjit
  path = ENV["RESULT_JSON_PATH"]
  File.write(path, JSON.pretty_generate(result)) if path
end
