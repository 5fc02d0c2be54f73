"""The platform's policy (api/platform.py), checked before a CodePilot's credentials are used or anything
is rendered.

A CodePilot's author chooses names; the operator turns them into pods running under the operator's own
authority. Without this check, anyone who may edit CodePilots could have the operator mount any Secret
of the namespace into an image of their choosing, run pods under any ServiceAccount, or at the
cluster's highest priority. So each spec a served version is rendered from is checked first:

- the fetcher image (it receives the S3 credentials) is the operator's own or one the platform allows;
- the ServiceAccount and the PriorityClass are ones the platform allows;
- every Secret the pods would reference (credentials, image pull Secrets, env ``secretKeyRef``, secret
  volumes) exists and carries the allow label its owner sets (``ALLOW_LABEL``), and is among the
  platform's Secret names if it set any (then RBAC lets the operator read no other);
- every PersistentVolumeClaim the pods would mount (the model cache, claim volumes) exists and carries
  the same label: a claim's data is readable by whoever can mount it, and the Triton container runs the
  author's image, so mounting a claim must be its owner's decision as much as reading a Secret is.

Volumes the pods may not have at all (hostPath and every other source but configMap, secret, emptyDir
and persistentVolumeClaim) are refused by the types already (api/pod.py), so no policy can allow them.

A refusal stops the reconcile before the snapshot step reads the credentials and before any child is
applied; Degraded (and WeightsVerified, for the credentials) say which field, and what to do. Pods
already running are left as they are: a policy change must not take a serving model down.

Reading a Secret (or claim) is the only way to see its labels, so the check costs a GET per object.
Allowed ones are remembered per CodePilot generation for ``recheck_seconds``: a changed spec is checked
at once, and an idle drift resync reads no Secret.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import httpx2

from codepilot_operator.api import CodePilot
from codepilot_operator.api.platform import ALLOW_LABEL, ALLOW_VALUE, PlatformPolicy, secret_allowed
from codepilot_operator.api.status import ConditionStatus, ConditionType, Reason
from codepilot_operator.clients.kube import Kind, KubeClient
from codepilot_operator.reconcile.status import ConditionUpdate
from codepilot_operator.render.served import ServedVersion, for_version

SECRET = Kind("v1", "Secret")
CLAIM = Kind("v1", "PersistentVolumeClaim")
RECHECK_SECONDS = 600.0


@dataclass(frozen=True)
class Violation:
    """One field the platform does not allow, and what to do about it."""

    path: str
    reason: Reason
    message: str
    credentials: bool = False  # about the S3 credentials: WeightsVerified says so too

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class SecretRef:
    """A Secret (or, with ``kind`` CLAIM, a PersistentVolumeClaim) the pods would use."""

    path: str
    name: str
    credentials: bool
    kind: Kind = SECRET

    @property
    def what(self) -> str:
        return "Secret" if self.kind == SECRET else "PersistentVolumeClaim"

    @property
    def kubectl(self) -> str:
        return "secret" if self.kind == SECRET else "pvc"


class PolicyRefused(Exception):
    """The CodePilot asks for something the platform does not allow: nothing was read or applied."""

    def __init__(self, violations: list[Violation]):
        super().__init__("; ".join(str(v) for v in violations))
        self.violations = violations
        self.reason = violations[0].reason
        self.conditions = refusal_conditions(violations)


def rendered_specs(cp: CodePilot, served: list[ServedVersion]) -> list[tuple[str, CodePilot]]:
    """Each spec a served version is rendered from, with the path users see it under.

    A stable version mid-rollout is rendered from the spec it was promoted with (status.stableTemplate),
    which was admitted then but is checked again: the platform's policy may have changed since.
    """
    specs: list[tuple[str, CodePilot]] = [("spec", cp)]
    for item in served:
        if item.template is not None:
            specs.append(("status.stableTemplate", for_version(cp, item)))
    return specs


def _allowed_list(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "none"


def _image_violation(
    path: str, requested: str | None, holder: str, platform: PlatformPolicy
) -> Violation | None:
    """The operator's code runs in the fetcher and the gateway, with secrets: another image only if the
    platform allows it."""
    image = platform.fetcher_image_for(requested)
    if platform.allows_fetcher_image(image):
        return None
    return Violation(
        path,
        Reason.IMAGE_NOT_ALLOWED,
        f"image {image} is not one the platform allows for {holder}; remove the field to run the "
        f"operator's image ({platform.fetcher_image}), or ask the platform team to allow it (chart value "
        f"policy.fetcherImages)",
    )


def spec_violations(prefix: str, cp: CodePilot, platform: PlatformPolicy) -> list[Violation]:
    """What the spec itself asks for that the platform does not allow (no API call needed)."""
    runtime = cp.spec.runtime
    images = [
        (
            f"{prefix}.runtime.fetcherImage",
            runtime.fetcher_image,
            "the weight fetcher, which receives the S3 credentials",
        )
    ]
    if cp.spec.api.enabled:
        images.append(
            (f"{prefix}.api.image", cp.spec.api.image, "the API gateway, which holds the teams' API keys")
        )
    found = []
    for path, requested, holder in images:
        violation = _image_violation(path, requested, holder, platform)
        if violation is not None:
            found.append(violation)
    if not platform.allows_service_account(runtime.service_account_name):
        found.append(
            Violation(
                f"{prefix}.runtime.serviceAccountName",
                Reason.SERVICE_ACCOUNT_NOT_ALLOWED,
                f"ServiceAccount {runtime.service_account_name} is not allowed by the platform (chart value "
                f"policy.serviceAccounts: {_allowed_list(platform.allowed_service_accounts)}); remove the "
                f"field to run as the namespace's default ServiceAccount",
            )
        )
    if not platform.allows_priority_class(runtime.priority_class_name):
        found.append(
            Violation(
                f"{prefix}.runtime.priorityClassName",
                Reason.PRIORITY_CLASS_NOT_ALLOWED,
                f"PriorityClass {runtime.priority_class_name} is not allowed by the platform (chart value "
                f"policy.priorityClasses: {_allowed_list(platform.allowed_priority_classes)}); remove the "
                f"field to use the cluster's default priority",
            )
        )
    return found


def secret_refs(prefix: str, cp: CodePilot) -> list[SecretRef]:
    """Every Secret and claim the rendered pods would reference: env from secretKeyRef, the CA bundle's
    volume, imagePullSecrets, secret and claim volumes, the model cache."""
    runtime = cp.spec.runtime
    refs = []
    if cp.spec.model.source.credentials_secret:
        refs.append(
            SecretRef(
                f"{prefix}.model.source.credentialsSecret", cp.spec.model.source.credentials_secret, True
            )
        )
    ca_bundle = cp.spec.model.source.ca_bundle
    if ca_bundle is not None and ca_bundle.secret_name:
        refs.append(SecretRef(f"{prefix}.model.source.caBundle.secretName", ca_bundle.secret_name, True))
    for index, name in enumerate(runtime.image_pull_secrets):
        refs.append(SecretRef(f"{prefix}.runtime.imagePullSecrets[{index}]", name, False))
    for index, env in enumerate(runtime.env):
        ref = env.value_from.secret_key_ref if env.value_from is not None else None
        if ref is not None:
            refs.append(
                SecretRef(f"{prefix}.runtime.env[{index}].valueFrom.secretKeyRef.name", ref.name, False)
            )
    for index, volume in enumerate(runtime.volumes):
        path = f"{prefix}.runtime.volumes[{index}]"
        if volume.secret is not None:
            refs.append(SecretRef(f"{path}.secret.secretName", volume.secret.secret_name, False))
        if volume.persistent_volume_claim is not None:
            claim = volume.persistent_volume_claim.claim_name
            refs.append(SecretRef(f"{path}.persistentVolumeClaim.claimName", claim, False, CLAIM))
    if cp.spec.model.cache is not None:
        refs.append(
            SecretRef(f"{prefix}.model.cache.claimName", cp.spec.model.cache.claim_name, False, CLAIM)
        )
    return refs


def name_violation(ref: SecretRef, namespace: str, platform: PlatformPolicy) -> Violation | None:
    if ref.kind != SECRET or platform.allows_secret_name(ref.name):
        return None
    return Violation(
        ref.path,
        Reason.SECRET_NOT_ALLOWED,
        f"Secret {namespace}/{ref.name} is not one of the Secret names the platform allows "
        f"(chart value policy.secretNames: {_allowed_list(platform.secret_names)})",
        ref.credentials,
    )


def secret_violation(ref: SecretRef, namespace: str, labels: dict[str, str] | None) -> Violation | None:
    """``labels``: the Secret's (or claim's) labels, None when it does not exist."""
    secret = ref.kind == SECRET
    if labels is None:
        reason = Reason.SECRET_NOT_FOUND if secret else Reason.CLAIM_NOT_FOUND
        return Violation(ref.path, reason, f"{ref.what} {namespace}/{ref.name} not found", ref.credentials)
    if secret_allowed(labels):
        return None
    return Violation(
        ref.path,
        Reason.SECRET_NOT_ALLOWED if secret else Reason.CLAIM_NOT_ALLOWED,
        f"{ref.what} {namespace}/{ref.name} is not allowed for CodePilots; whoever owns it can allow it "
        f"with `kubectl label {ref.kubectl} {ref.name} -n {namespace} {ALLOW_LABEL}={ALLOW_VALUE}`",
        ref.credentials,
    )


def unreadable_violation(ref: SecretRef, namespace: str) -> Violation:
    if ref.kind != SECRET:
        return Violation(
            ref.path,
            Reason.CLAIM_NOT_ALLOWED,
            f"the operator may not read PersistentVolumeClaim {namespace}/{ref.name} (HTTP 403): its RBAC "
            "covers only watched namespaces",
        )
    return Violation(
        ref.path,
        Reason.SECRET_NOT_ALLOWED,
        f"the operator may not read Secret {namespace}/{ref.name} (HTTP 403): its RBAC covers only the "
        "chart's policy.secretNames and watched namespaces",
        ref.credentials,
    )


def platform_default(violation: Violation, from_platform: Collection[str]) -> Violation:
    """The violation, saying where its value came from when the CodePilot did not set it."""
    field = next(
        (f for f in from_platform if violation.path == f or violation.path.startswith(f + ".")), None
    )
    if field is None:
        return violation
    chart_value = "defaults.source." + field.rsplit(".", 1)[-1]
    message = f"{violation.message} (the platform's default, chart value {chart_value})"
    return dataclasses.replace(violation, message=message)


def refusal_conditions(violations: list[Violation]) -> list[ConditionUpdate]:
    """Reconciled False and Degraded True name every refused field; WeightsVerified False when the
    credentials are among them (the weights cannot be fetched or verified without them)."""
    first = violations[0]
    message = "nothing applied: " + "; ".join(str(v) for v in violations)
    updates = [
        ConditionUpdate(ConditionType.RECONCILED, ConditionStatus.FALSE, first.reason, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, first.reason, message),
    ]
    credentials = next((v for v in violations if v.credentials), None)
    if credentials is not None:
        updates.append(
            ConditionUpdate(
                ConditionType.WEIGHTS_VERIFIED, ConditionStatus.FALSE, credentials.reason, str(credentials)
            )
        )
    return updates


class Admission:
    """Checks CodePilots against ``platform``; one per operator process (it remembers allowed Secrets)."""

    def __init__(
        self,
        kube: KubeClient,
        platform: PlatformPolicy,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.kube = kube
        self.platform = platform
        self._recheck = recheck_seconds
        self._clock = clock
        # (uid, generation, kind, name) -> when it was allowed
        self._allowed: dict[tuple[str, int | None, str, str], float] = {}

    async def check(
        self, cp: CodePilot, served: list[ServedVersion], from_platform: Collection[str] = ()
    ) -> None:
        """Raise PolicyRefused naming every refused field; return when the platform allows it all.

        ``from_platform``: the fields the platform's defaults filled in (api/defaults.py); a refusal of
        one says so, since its author never wrote it.
        """
        violations: list[Violation] = []
        refs: dict[tuple[str, str], SecretRef] = {}
        for prefix, spec in rendered_specs(cp, served):
            violations += spec_violations(prefix, spec, self.platform)
            for ref in secret_refs(prefix, spec):
                refs.setdefault((ref.kind.kind, ref.name), ref)
        namespace = cp.metadata.namespace
        for ref in refs.values():
            problem = name_violation(ref, namespace, self.platform) or await self._secret(cp, ref)
            if problem is not None:
                violations.append(problem)
        if violations:
            raise PolicyRefused([platform_default(v, from_platform) for v in violations])

    async def _secret(self, cp: CodePilot, ref: SecretRef) -> Violation | None:
        now = self._clock()
        key = (str(cp.metadata.uid), cp.metadata.generation, ref.kind.kind, ref.name)
        if now - self._allowed.get(key, float("-inf")) < self._recheck:
            return None
        namespace = cp.metadata.namespace
        try:
            secret = await self.kube.get(ref.kind, namespace, ref.name)
        except httpx2.HTTPStatusError as exc:
            if exc.response.status_code == 403:
                return unreadable_violation(ref, namespace)
            raise
        # Only the labels are looked at; the values stay in the returned object, which is dropped here.
        labels = None if secret is None else dict(secret.get("metadata", {}).get("labels") or {})
        problem = secret_violation(ref, namespace, labels)
        if problem is None:
            self._forget_older_than(now - self._recheck)
            self._allowed[key] = now
        else:
            self._allowed.pop(key, None)
        return problem

    def _forget_older_than(self, cutoff: float) -> None:
        for key in [k for k, when in self._allowed.items() if when < cutoff]:
            del self._allowed[key]
