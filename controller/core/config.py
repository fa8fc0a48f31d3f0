"""desired/ + compose files -> Config: what every service should run, all cross-checked.

A daemon must keep running the last good state of a stack whose files turned invalid while
other stacks follow their changes, so validity is reported per desired file
(`build_config_partial`) and `keep_last_good` combines a partial result with the previous
Config project by project. `build_config` is the strict form for `berth validate/plan/apply`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.core.boundary import ConfigFiles
from controller.core.compose.resources import GLOBAL_ONE
from controller.core.desired import parse_desired
from controller.core.loadwork import LoadWork, read_compose
from controller.core.model import (
    DesiredService,
    DesiredStack,
    ServiceSpec,
    StackSpec,
    Target,
    image_ref,
    tag_of,
)
from controller.core.tagpolicy import tag_allowed
from controller.core.yamlsrc import Path, Where
from controller.errors import ConfigError, Problem, brief


@dataclass(frozen=True)
class Config:
    stacks: Mapping[str, StackSpec]  # by project
    desired: Mapping[str, DesiredStack]  # by project; files of one project merged
    targets: tuple[Target, ...]
    files: tuple[str, ...]  # every file read or looked for: for the file watcher
    sources: Mapping[str, str] = field(default_factory=dict)  # desired file -> project

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """What the compose files do that compose accepts and Berth follows, but that is
        worth saying (an unknown volume mode dropped), every stack's, once."""
        return tuple(dict.fromkeys(w for s in self.stacks.values() for w in s.warnings))


@dataclass(frozen=True)
class PartialConfig:
    config: Config  # built from the valid desired files only
    problems: Mapping[str, tuple[Problem, ...]]  # every desired file; () = valid

    def valid(self, file: str) -> bool:
        return not self.problems.get(file)


def _single_reason(spec: ServiceSpec) -> str | None:
    """Why desired/ may not run more than one container of the service (None: it may)."""
    if spec.fixed_address:
        return "the service has a fixed IP or MAC address: one container can hold it"
    if spec.container_name:
        return (
            f"the service has container_name {spec.container_name!r}: one container can hold a name"
        )
    if spec.one_per_host:
        return GLOBAL_ONE
    return None


def build_config(
    desired_files: Sequence[tuple[str, str]], *, environ: Mapping[str, str], files: ConfigFiles
) -> Config:
    """All files must be valid; ConfigError lists every problem in every file."""
    partial = build_config_partial(desired_files, environ=environ, files=files)
    problems = list(dict.fromkeys(p for probs in partial.problems.values() for p in probs))
    if problems:
        raise ConfigError(problems)
    return partial.config


def build_config_partial(
    desired_files: Sequence[tuple[str, str]], *, environ: Mapping[str, str], files: ConfigFiles
) -> PartialConfig:
    """Per-file validity; one valid file still loads when another is invalid."""
    work = LoadWork(environ=environ, files_port=files)
    for file, text in desired_files:
        work.problems[file] = []
        work.files.append(file)
        try:
            work.parsed[file] = parse_desired(file, text)
        except ConfigError as exc:
            work.add(file, exc.problems)
    for file, desired in work.parsed.items():
        _load_stack_for(work, file, desired, dict(desired_files)[file])
    _cross_check(work)
    config = _assemble(work)
    return PartialConfig(config, {f: tuple(dict.fromkeys(p)) for f, p in work.problems.items()})


def _load_stack_for(work: LoadWork, file: str, desired: DesiredStack, text: str) -> None:
    files = read_compose(work, file, desired, text)
    if files is None:
        return
    try:
        stack = work.stack(files)
    except ConfigError as exc:
        work.add(file, exc.problems)
        return
    table = work.lines(file, text)[1]
    if desired.project and desired.project != stack.project:
        # The project names every network and volume (`{project}_{key}`): were desired/ to
        # choose it, one commit could mount another stack's volumes and join its networks.
        msg = (
            f"project {brief(desired.project)} is not this compose project "
            f"({brief(stack.project)}, "
            "from the compose file's `name:` or its directory): the compose file chooses "
            "the project, which names its containers, networks and volumes (security boundary)"
        )
        work.add(file, [Problem(file, table[("project",)].line, "project", msg)])
        return
    work.stacks[file] = stack
    work.files.extend(stack.env_files)
    _check_services(work, file, desired, stack, table)


def _check_services(
    work: LoadWork, file: str, desired: DesiredStack, stack: StackSpec, table: dict[Path, Where]
) -> None:
    for name, svc in desired.services.items():
        line = svc.where.line
        spec = stack.services.get(name)
        if spec is None:
            known = ", ".join(stack.services)
            why = f"no service {brief(name)} in the compose file(s); known: {known}"
            if name in stack.disabled:  # desired/ cannot enable it: that is the operator's
                why = f"{stack.disabled[name]} (a desired file cannot enable a service)"
            work.add(file, [Problem(file, line, f"services.{name}", why)])
            continue
        single = _single_reason(spec)
        if single and svc.replicas is not None and svc.replicas > 1:
            work.add(
                file,
                [
                    Problem(
                        file,
                        table[("services", name, "replicas")].line,
                        f"services.{name}.replicas",
                        single,
                    )
                ],
            )
        pattern = spec.berth.allowed_tags
        if pattern is not None and not tag_allowed(pattern, svc.tag):
            tag_line = table[("services", name, "tag")].line
            work.add(
                file,
                [
                    Problem(
                        file,
                        tag_line,
                        f"services.{name}.tag",
                        f"tag {brief(svc.tag)} does not match allowed_tags {brief(pattern)} "
                        f"({spec.source_file})",
                    )
                ],
            )


def _cross_check(work: LoadWork) -> None:
    """Conflicts between desired files: both files are invalid, each naming the other."""
    by_project: dict[str, list[str]] = {}
    for file, stack in work.stacks.items():
        by_project.setdefault(stack.project, []).append(file)
    for files in by_project.values():
        first = files[0]
        for other in files[1:]:
            # compared resolved: two spellings of one file (a symlink) are the same list
            if work.stacks[first].compose_files != work.stacks[other].compose_files:
                for f, g in ((first, other), (other, first)):
                    work.add(
                        f,
                        [
                            Problem(
                                f,
                                1,
                                "compose",
                                f"project {brief(work.stacks[f].project)} "
                                f"is also defined by {g} with other compose files",
                            )
                        ],
                    )
        seen: dict[str, DesiredService] = {}
        for file in files:
            for name, svc in work.parsed[file].services.items():
                prior = seen.setdefault(name, svc)
                if prior is not svc:
                    for x, y in ((prior, svc), (svc, prior)):
                        work.add(
                            x.where.file,
                            [
                                Problem(
                                    x.where.file,
                                    x.where.line,
                                    f"services.{name}",
                                    f"also set in {y.where.file}:{y.where.line}",
                                )
                            ],
                        )
    _check_upstream_files(work)
    _check_resource_names(work)
    _check_backends(work)


ONE_BACKEND = (
    "one Berth process drives one backend; run a second berth with its own --desired and "
    "--state-dir"
)


def _check_backends(work: LoadWork) -> None:
    """Stacks that disagree on `x-berth.backend` are all invalid, each naming its compose
    file and the projects on the other backend(s): which one is meant is not Berth's guess."""
    by_backend: dict[str, list[str]] = {}
    for stack in work.stacks.values():
        by_backend.setdefault(stack.backend, []).append(stack.project)
    if len(by_backend) < 2:
        return
    for file, stack in work.stacks.items():
        others = sorted(
            f"{brief(p)} ({b})" for b, ps in by_backend.items() if b != stack.backend for p in ps
        )
        at = stack.backend_at
        where = (at.file, at.line) if at else (stack.compose_files[0], None)
        mine = stack.backend if at else f"{stack.backend} (the default: not set)"
        msg = f"{mine} here, but {', '.join(others)} use another backend: {ONE_BACKEND}"
        work.add(file, [Problem(*where, "x-berth.backend", msg)])


def _check_resource_names(work: LoadWork) -> None:
    """Two projects whose networks or volumes end up with one Docker name (`app` + `x_y`
    and `app_x` + `y` both give `app_x_y`) would share them; `external` ones are meant to
    be shared and are left alone."""
    owner: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, name) -> (project, file)
    for file, stack in work.stacks.items():
        named = [("network", n.name) for n in stack.networks.values() if not n.external]
        named += [("volume", v.name) for v in stack.volumes.values() if not v.external]
        for kind, name in named:
            prior = owner.setdefault((kind, name), (stack.project, file))
            if prior[0] == stack.project:
                continue
            for f, other in ((file, prior[0]), (prior[1], stack.project)):
                msg = f"{kind} {brief(name)} is also a {kind} of project {brief(other)}"
                work.add(f, [Problem(f, None, "compose", msg)])


def _check_upstream_files(work: LoadWork) -> None:
    owner: dict[str, tuple[str, str]] = {}  # upstreams file -> (project, desired file)
    for file, stack in work.stacks.items():
        if stack.proxy is None:
            continue
        prior = owner.setdefault(stack.proxy.upstreams_file, (stack.project, file))
        if prior[0] != stack.project:
            target = stack.proxy.upstreams_file
            msg = f"upstreams_file {target} is also written for project {brief(prior[0])}"
            work.add(file, [Problem(file, None, "compose", msg)])
            work.add(
                prior[1], [Problem(prior[1], None, "compose", msg.replace(prior[0], stack.project))]
            )


def _assemble(work: LoadWork) -> Config:
    stacks: dict[str, StackSpec] = {}
    desired: dict[str, DesiredStack] = {}
    sources: dict[str, str] = {}
    for file, stack in work.stacks.items():
        sources[file] = stack.project
        if work.problems.get(file):
            continue
        stacks[stack.project] = stack
        mine = work.parsed[file]
        have = desired.get(stack.project)
        services = {**(have.services if have else {}), **mine.services}
        desired[stack.project] = DesiredStack(
            project=stack.project,
            file=have.file if have else file,
            compose_files=mine.compose_files,
            services=services,
        )
    targets = tuple(t for p in sorted(stacks) for t in _targets(stacks[p], desired[p]))
    return Config(
        stacks=stacks,
        desired=desired,
        targets=targets,
        files=tuple(dict.fromkeys(work.files)),
        sources=sources,
    )


def _targets(stack: StackSpec, desired: DesiredStack) -> list[Target]:
    return settle_peers(_plain_targets(stack, desired))


def settle_peers(targets: Sequence[Target]) -> list[Target]:
    """Each service's target; one that joins or mounts another's container (its `peers`)
    carries their revisions, so it is replaced after them (in dependency order). Run again
    whenever a revision changes after loading (a digest pinned, core/digests.py)."""
    out = {t.service: t for t in targets}
    pending = [t for t in out.values() if t.spec.peers]
    for _ in range(len(pending)):  # a chain of peers settles in as many passes
        for t in pending:
            revs = tuple(f"{p}={out[p].revision}" for p in t.spec.peers if p in out)
            if revs != out[t.service].spec.peer_revisions:
                spec = replace(out[t.service].spec, peer_revisions=revs)
                out[t.service] = replace(out[t.service], spec=spec)
    return list(out.values())


def _plain_targets(stack: StackSpec, desired: DesiredStack) -> list[Target]:
    out: list[Target] = []
    for name, spec in stack.services.items():
        want = desired.services.get(name)
        if want is None:
            image, tag, replicas = spec.image, tag_of(spec.image), spec.replicas
        else:
            image, tag = image_ref(spec.image, want.tag), want.tag
            replicas = spec.replicas if want.replicas is None else want.replicas
        out.append(
            Target(
                project=stack.project,
                service=name,
                image=image,
                tag=tag,
                replicas=replicas,
                spec=spec,
            )
        )
    return out


def keep_last_good(partial: PartialConfig, last: Config | None) -> Config:
    """The new config, except that a project with an invalid desired file keeps its last
    good stack, desired state and targets: an invalid file changes nothing (DESIGN §2)."""
    new = partial.config
    if last is None:
        return new
    frozen = {
        p
        for f, probs in partial.problems.items()
        if probs
        for p in (last.sources.get(f), new.sources.get(f))
        if p
    }
    frozen &= set(last.stacks)
    stacks = {
        **{p: s for p, s in new.stacks.items() if p not in frozen},
        **{p: last.stacks[p] for p in frozen},
    }
    desired = {
        **{p: d for p, d in new.desired.items() if p not in frozen},
        **{p: last.desired[p] for p in frozen if p in last.desired},
    }
    targets = tuple(
        t
        for p in sorted(stacks)
        for t in (last.targets if p in frozen else new.targets)
        if t.project == p
    )
    sources = {**last.sources, **new.sources}
    return Config(
        stacks=stacks,
        desired=desired,
        targets=targets,
        files=tuple(dict.fromkeys((*new.files, *last.files))),
        sources=sources,
    )
