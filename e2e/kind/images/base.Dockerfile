# kind's base image (the sigs.k8s.io/kind module's images/base/Dockerfile), rebuilt by e2e/kind/images.py for
# Docker's legacy builder (no COPY --chmod: modes are fixed in a RUN) from:
#   ROOTFS  the Debian bookworm rootfs (e2e/kind/images/rootfs.sh) with the packages kind's Dockerfile installs;
#   files/  kind's own images/base/files, copied from the pinned kind module at build time;
#   bin/    containerd, ctr, containerd-shim-runc-v2 and crictl; cni/: the CNI plugins (Go builds, e2e/versions.toml).
# runc is Debian's (in the rootfs). One change to kind's files: containerd's restrict_oom_score_adj = true, because
# runc cannot lower a container's oom_score_adj without CAP_SYS_RESOURCE, which this VM's capability bounding set
# lacks (every pod sandbox would fail with "can't get final child's PID from pipe: EOF").
ARG ROOTFS
FROM ${ROOTFS}
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
COPY bin/ /usr/local/bin/
COPY cni/ /opt/cni/bin/
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* /opt/cni/bin/* \
 && find /etc/systemd/system /etc/containerd /etc/default /etc/sysctl.d /etc/crictl.yaml -type f \
      -exec chmod 0644 {} + \
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
 && systemctl mask systemd-binfmt.service \
 && mkdir -p /etc/kubernetes/manifests \
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \
 && grep -q '^ *restrict_oom_score_adj = true' /etc/containerd/config.toml \
 && ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
 && containerd --version && crictl --version && runc --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
