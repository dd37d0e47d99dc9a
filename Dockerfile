# Capstan server image: a small, non-root image with the pinned, checksum-verified helm binaries.
# Build: docker build -t capstan .   Run: docker run -p 50051:50051 -p 8080:8080 -v capstan:/data capstan
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
COPY scripts ./scripts
RUN python -m venv /opt/capstan \
 && /opt/capstan/bin/pip install --no-cache-dir . \
 && python scripts/install_tools.py --dest /opt/capstan/tools

FROM python:3.11-slim
# setpriv (util-linux, part of Debian's base) ties each helm run to the server (PDEATHSIG):
# fail the build if it is missing rather than let helm outlive a killed server.
RUN command -v setpriv \
 && useradd --system --uid 10001 --home-dir /data --create-home capstan
COPY --from=build /opt/capstan /opt/capstan
COPY samples /opt/capstan/samples
ENV PATH=/opt/capstan/bin:$PATH
USER 10001
VOLUME ["/data"]
EXPOSE 50051 8080
# /healthz answers 200 once the server is SERVING (503 while it starts or stops).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/opt/capstan/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["capstan-server", "--grpc-listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:8080", \
            "--data-dir", "/data", "--helm-bin", "/opt/capstan/tools/bin/helm"]
# Mount a policy file (README, "Security") there, or give other flags as the command; without
# --auth-policy the server refuses to listen on 0.0.0.0 (unless --insecure-no-auth).
CMD ["--auth-policy", "/etc/capstan/policy.yaml"]
