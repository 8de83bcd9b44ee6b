# The fake suite's benchmarks, found and filtered as ruby-bench's BenchmarkSuite does
# (lib/benchmark_suite.rb at 09b76c8b): `benchmarks` is the discovered, filtered list in
# name order. cloudbench's order prelude shuffles it by prepending to this method.
require "yaml"

class BenchmarkSuite
  Entry = Struct.new(:name, :script_path, keyword_init: true)

  def initialize(categories:, name_filters:)
    @categories = categories
    @name_filters = name_filters
  end

  def benchmarks
    @benchmarks ||= discover
  end

  private

  def discover
    meta = YAML.load_file("benchmarks.yml")
    found = Dir["benchmarks/*.rb"].map { |p| [File.basename(p, ".rb"), p] } +
            Dir["benchmarks/*/benchmark.rb"].map { |p| [File.basename(File.dirname(p)), p] }
    found.sort.filter_map do |name, path|
      category = (meta[name] || {}).fetch("category", "other")
      next unless @categories.empty? || @categories.include?(category)
      next unless @name_filters.empty? || @name_filters.include?(name)

      Entry.new(name: name, script_path: path)
    end
  end
end
