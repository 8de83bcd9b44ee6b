#!/usr/bin/env ruby
# Fake ruby-bench runner for cloudbench's tests (same CLI and output shapes, tiny suite).
require "etc"
require "fileutils"
require "json"
require "optparse"
require "rbconfig"
require "shellwords"
require "yaml"
require_relative "lib/benchmark_suite"

opts = { executables: {}, out_path: File.expand_path("data"), out_name: nil,
         categories: [], names: [], no_pinning: false, interleave: false }
OptionParser.new do |o|
  o.on("-e=NAME::RUBY_PATH OPTIONS") do |v|
    v.split(";").each do |spec|
      name, cmd = spec.split("::", 2)
      cmd ||= name
      opts[:executables][name] = cmd.shellsplit
    end
  end
  o.on("--out_path=DIR") { |v| opts[:out_path] = v }
  o.on("--out-name=PREFIX") { |v| opts[:out_name] = v }
  o.on("--category=LIST") { |v| opts[:categories] += v.split(",") }
  o.on("--headline") { opts[:categories] << "headline" }
  o.on("--warmup=N") { |v| ENV["WARMUP_ITRS"] = v }
  o.on("--bench=N") { |v| ENV["MIN_BENCH_ITRS"] = v; ENV["MIN_BENCH_TIME"] ||= "0" }
  o.on("--once") { ENV["WARMUP_ITRS"] = "0"; ENV["MIN_BENCH_ITRS"] = "1"; ENV["MIN_BENCH_TIME"] = "0" }
  o.on("--no-sudo") {}
  o.on("--no-pinning") { opts[:no_pinning] = true }
  o.on("--interleave") { opts[:interleave] = true }
end.parse!(ARGV)
opts[:names] = ARGV.dup

# Not in ruby-bench: the tests start hundreds of these processes and RubyGems is most of
# each one's start-up (~50 ms of CPU; nothing here needs a gem), so child processes get
# --disable-gems through RUBYOPT. Their command lines and RUBY_DESCRIPTION are unchanged.
# (No --yjit-* switch: on Ruby 3.1 any of them turns YJIT on, which would hide a Ruby
# that ignores --yjit.)
CHILD_ENV = { "RUBYOPT" => [ENV["RUBYOPT"], "--disable-gems"].compact.join(" ") }.freeze

if opts[:executables].empty?
  probe = [RbConfig.ruby, "--yjit", "-v"]
  if IO.popen(CHILD_ENV, probe, err: File::NULL, &:read).include?("YJIT")
    opts[:executables]["interp"] = [RbConfig.ruby]
    opts[:executables]["yjit"] = [RbConfig.ruby, "--yjit"]
  else
    opts[:executables]["ruby"] = [RbConfig.ruby]
  end
end

entries = BenchmarkSuite.new(categories: opts[:categories], name_filters: opts[:names])
                        .benchmarks.map { |e| [e.name, e.script_path] }

# Made even with --out-name: the per-benchmark temp JSON files go there.
FileUtils.mkdir_p(opts[:out_path])
prefix = opts[:out_name] || begin
  n = (1..).find { |i| !File.exist?(File.join(opts[:out_path], format("output_%03d.csv", i))) }
  File.join(opts[:out_path], format("output_%03d", n))
end

descriptions = opts[:executables].transform_values do |cmd|
  IO.popen(CHILD_ENV, [*cmd, "-v"], &:read).strip
end

# As ruby-bench's BenchmarkSuite#setarch_prefix: ASLR off via `setarch <arch> -R`, and
# silently nothing when that is refused (a container's seccomp profile, for one).
setarch = ["setarch", `uname -m`.strip, "-R"]
setarch = [] unless system(*setarch, "true", out: File::NULL, err: File::NULL)
# As BenchmarkSuite#base_cmd: CRuby is pinned to one CPU unless --no-pinning.
base_cmd = lambda do |description|
  cmd = setarch.dup
  if description.start_with?("ruby ") && !opts[:no_pinning]
    cmd += ["taskset", "-c", [(Etc.nprocessors / 2) - 1, 0].max.to_s]
  end
  cmd
end
raw = {}
failures = Hash.new { |h, k| h[k] = [] }
started = Time.now
run_one = lambda do |exe, name, path|
  cmd = opts[:executables][exe]
  json_path = File.join(opts[:out_path], "temp#{Process.pid}.json")
  line = [*base_cmd.(descriptions[exe]), *cmd, "-I", "harness", File.expand_path(path)].shelljoin
  puts "+ #{line}"
  $stdout.flush
  if system({ "RESULT_JSON_PATH" => json_path, **CHILD_ENV }, line)
    raw[exe][name] = JSON.parse(File.read(json_path)).merge("command_line" => line)
    File.delete(json_path)
  else
    puts "Command #{line.inspect} failed with exit code #{$?.exitstatus} in directory #{Dir.pwd}"
    failures[exe] << name
  end
end
opts[:executables].each_key { |exe| raw[exe] = {} }
if opts[:interleave]
  # As BenchmarkRunner::CLI#run with --interleave: each benchmark on every executable in
  # turn, the executables' order reversed on every other benchmark.
  entries.each_with_index do |(name, path), idx|
    exes = descriptions.keys
    exes = exes.reverse if idx.odd?
    exes.each do |exe|
      puts "Running benchmark \"#{name}\" [#{exe}] (#{idx + 1}/#{entries.size})"
      run_one.(exe, name, path)
    end
  end
else
  opts[:executables].each_key do |exe|
    entries.each_with_index do |(name, path), idx|
      puts "Running benchmark \"#{name}\" (#{idx + 1}/#{entries.size})"
      run_one.(exe, name, path)
    end
  end
end
puts "Total time spent benchmarking: #{(Time.now - started).round}s"
failed_count = failures.values.sum(&:size)
puts "Failed benchmarks: #{failed_count}" if failed_count > 0
puts

mean = ->(xs) { xs.sum / xs.size }
cell = lambda do |xs|
  m = mean.(xs)
  sd = xs.size > 1 ? Math.sqrt(xs.sum { |x| (x - m)**2 } / (xs.size - 1)) : 0.0
  format("%.1f ± %.1f%%", m * 1000, 100 * sd / m)
end
exes = opts[:executables].keys
base = exes.first
header = ["bench"] + exes.map { |e| "#{e} (ms)" }
exes.drop(1).each { |e| header += ["#{e} 1st itr", "#{base}/#{e}"] }
names = entries.map(&:first)
rows = names.map do |name|
  next [name] + ["N/A"] * (header.size - 1) unless exes.all? { |e| raw[e][name] }

  r = exes.map { |e| raw[e][name] }
  row = [name] + r.map { |x| cell.(x["bench"]) }
  exes.drop(1).each_with_index do |_, i|
    first = ->(x) { (x["warmup"] + x["bench"]).first }
    row += [first.(r[0]) / first.(r[i + 1]), format("%.3f", mean.(r[0]["bench"]) / mean.(r[i + 1]["bench"]))]
  end
  row
end
desc_lines = exes.map { |e| "#{e}: #{descriptions[e]}" }
widths = header.each_index.map { |i| ([header] + rows).map { |r| r[i].is_a?(Float) ? format("%.3f", r[i]).size : r[i].to_s.size }.max }
fmt_row = ->(r) { r.each_with_index.map { |c, i| (c.is_a?(Float) ? format("%.3f", c) : c.to_s).send(i.zero? ? :ljust : :rjust, widths[i]) }.join("  ") }
rule = widths.map { |w| "-" * w }.join("  ")
table = [*desc_lines, "", rule, fmt_row.(header), *rows.sort_by { |r| r[1] == "N/A" ? 0 : 1 }.map(&fmt_row), rule].join("\n") + "\n"

File.write("#{prefix}.json", JSON.generate({ "metadata" => descriptions, "raw_data" => raw }))
csv_rows = exes.map { |e| "#{e},#{descriptions[e]}" } + [""] + [header.join(",")] +
           rows.reject { |r| r[1] == "N/A" }.map { |r| r.map(&:to_s).join(",") }
File.write("#{prefix}.csv", csv_rows.join("\n") + "\n")
File.write("#{prefix}.txt", table)
puts table
puts "Output:"
puts "#{prefix}.json"
unless failures.empty?
  puts
  puts "Failed benchmarks:"
  failures.each { |exe, list| puts "  #{exe}: #{list.join(', ')}" }
  exit 1
end
