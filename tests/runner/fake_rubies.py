"""FAKE RUBIES for tests (only Debian's Ruby 3.1 exists here): bash wrappers around the
host's Ruby that claim another version in RUBY_VERSION and RUBY_DESCRIPTION (which also
says "fake ruby for tests"), optionally with a fake ZJIT: `--zjit` then sets
`RubyVM::ZJIT.enabled?` and `+ZJIT`. Without it, `--zjit` reaches the real Ruby 3.1,
which refuses it as an invalid option. Installed as HOME/.rubies/ruby-VERSION/bin/ruby,
where the host executor's find_ruby looks.
"""

from __future__ import annotations

import stat
from pathlib import Path

PRELUDE = """\
version, zjit = ENV.fetch("FAKE_RUBY_VERSION"), ENV.delete("FAKE_ZJIT") == "1"
yjit = defined?(RubyVM::YJIT.enabled?) && RubyVM::YJIT.enabled?
marks = "#{yjit ? '+YJIT ' : ''}#{zjit ? '+ZJIT ' : ''}"
desc = "ruby #{version} (fake ruby for tests, really #{RUBY_VERSION}) #{marks}[x86_64-linux]"
verbose, $VERBOSE = $VERBOSE, nil
Object.send(:remove_const, :RUBY_VERSION)
Object.const_set(:RUBY_VERSION, version)
Object.send(:remove_const, :RUBY_DESCRIPTION)
Object.const_set(:RUBY_DESCRIPTION, desc)
$VERBOSE = verbose
if ENV["FAKE_HAS_ZJIT"] == "1"
  RubyVM.const_set(:ZJIT, Module.new) unless defined?(RubyVM::ZJIT)
  RubyVM::ZJIT.define_singleton_method(:enabled?) { zjit }
end
"""

WRAPPER = """\
#!/bin/bash
# A fake ruby for tests: the host's Ruby {real} claiming to be Ruby {version}.
args=(); zjit=0
for a in "$@"; do
  if [ "{has_zjit}" = 1 ] && [[ "$a" == --zjit* ]]; then zjit=1; else args+=("$a"); fi
done
export FAKE_RUBY_VERSION={version} FAKE_ZJIT=$zjit FAKE_HAS_ZJIT={has_zjit}
exec {real} -r{prelude} "${{args[@]}}"
"""


def fake_ruby(home: Path, version: str, has_zjit: bool, real: str) -> None:
    home.mkdir(exist_ok=True)
    prelude = home / f"fake-{version}.rb"
    prelude.write_text(PRELUDE)
    path = home / ".rubies" / f"ruby-{version}" / "bin" / "ruby"
    path.parent.mkdir(parents=True)
    path.write_text(
        WRAPPER.format(real=real, version=version, has_zjit=int(has_zjit), prelude=prelude)
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


# STAND-IN RUBY IMAGES for the container path: the ruby:3.1 image with the wrapper above
# first on PATH as `ruby` (the image's own Ruby behind it, as ruby.real), so
# `ruby -v` / RUBY_DESCRIPTION say "fake ruby for tests". The runner is pointed at them
# with --ruby-image FAKE_IMAGE_REPO (images `<repo>:<version>`, as `ruby:<version>`).
FAKE_IMAGE_REPO = "localhost/cloudbench-test-fake-ruby"
REAL_IMAGE = "docker.io/library/ruby:3.1"
IMAGE_DOCKERFILE = """\
FROM {base}
COPY fake.rb /opt/cloudbench-fake-ruby/fake.rb
COPY ruby /opt/cloudbench-fake-ruby/ruby
RUN real=$(readlink -f "$(command -v ruby)") \\
 && if [ "$real" = /usr/local/bin/ruby ]; then \\
      mv /usr/local/bin/ruby /usr/local/bin/ruby.real; real=/usr/local/bin/ruby.real; fi \\
 && ln -s "$real" /opt/cloudbench-fake-ruby/ruby.real \\
 && install -m 755 /opt/cloudbench-fake-ruby/ruby /usr/local/bin/ruby
LABEL cloudbench.test-standin="fake ruby {version} for tests" cloudbench.test-standin-id="{key}"
"""


def fake_ruby_image(work: Path, version: str, has_zjit: bool) -> str:
    """`FAKE_IMAGE_REPO:<major.minor>` claiming Ruby `version` (built once; rebuilt when
    this recipe changes). Returns the tag the runner resolves (`--ruby-image` + version)."""
    import hashlib

    import docker
    from docker.errors import ImageNotFound

    prelude = "/opt/cloudbench-fake-ruby/fake.rb"
    real = "/opt/cloudbench-fake-ruby/ruby.real"  # the image's own Ruby (RUN resolves it)
    wrapper = WRAPPER.format(real=real, version=version, has_zjit=int(has_zjit), prelude=prelude)
    key = hashlib.sha256((PRELUDE + wrapper + IMAGE_DOCKERFILE).encode()).hexdigest()[:16]
    tag = f"{FAKE_IMAGE_REPO}:{version.rsplit('.', 1)[0]}"
    client = docker.from_env()
    try:
        try:
            if client.images.get(tag).labels.get("cloudbench.test-standin-id") == key:
                return tag
        except ImageNotFound:
            pass
        context = work / f"fake-ruby-image-{version}"
        context.mkdir(parents=True)
        (context / "fake.rb").write_text(PRELUDE)
        (context / "ruby").write_text(wrapper)
        (context / "Dockerfile").write_text(
            IMAGE_DOCKERFILE.format(base=REAL_IMAGE, version=version, key=key)
        )
        client.images.build(path=str(context), tag=tag, rm=True)
    finally:
        client.close()
    return tag
