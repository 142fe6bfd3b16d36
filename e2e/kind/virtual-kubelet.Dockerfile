# syntax=docker/dockerfile:1
# virtual-kubelet with its mock provider, for the virtual node of the e2e suite's kind cluster
# (e2e/kind/manifests/virtual-kubelet.yaml). e2e/kind/up.sh builds it, with the version pinned in e2e/versions.toml
# and no build context (nothing is copied from the repository):
#   docker build -t tideover-virtual-kubelet:e2e --build-arg VIRTUAL_KUBELET_VERSION=<version> - < e2e/kind/virtual-kubelet.Dockerfile
# The local-process path builds the same package from the same module version (e2e/components.py).

# virtual-kubelet v1.13.0's go.mod asks for Go 1.25; the image's Go downloads a newer toolchain if a later
# version asks for more (GOTOOLCHAIN=auto).
ARG GO_IMAGE=golang:1.25
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
ARG VIRTUAL_KUBELET_VERSION
RUN test -n "${VIRTUAL_KUBELET_VERSION}" \
 || { echo "pass --build-arg VIRTUAL_KUBELET_VERSION=<version from e2e/versions.toml>" >&2; exit 1; }
# Static binary (the runtime image has no libc); -X main.buildVersion as e2e/components.py sets it.
ENV CGO_ENABLED=0 \
    GOBIN=/out
RUN go install -trimpath -ldflags "-s -w -X main.buildVersion=${VIRTUAL_KUBELET_VERSION}" \
      "github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet@${VIRTUAL_KUBELET_VERSION}"

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/virtual-kubelet /usr/local/bin/virtual-kubelet
# distroless's nonroot user, numeric so that runAsNonRoot can check it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/virtual-kubelet"]
