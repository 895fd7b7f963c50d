# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubesim: a stateful test double of kubeadm, kubelet, kubectl and the Kubernetes API server.

It runs inside the molecule systemd containers (Debian python3, python3-yaml and
python3-cryptography only) so that the real roles kubeadm_control_plane and kubeadm_worker
run their decisions against something that behaves like a cluster. docs/kubesim.md says what
it simulates and what it does not prove.

Modules:
- state: the one cluster state (JSON file under flock, shared by every container), the clock.
- pki: CA, certificates, kubeconfigs, the discovery hash, kubeadm's certificate encryption.
- versions: version parsing and the skew rules of kubeadm.
- kubeadm, kubectl, kubelet: the command-line doubles (python3 -m kubesim.<name>).
- apiserver: the HTTPS API server double the kubelet double "runs" from its static pod manifest.
"""
