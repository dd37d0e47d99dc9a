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
RUN useradd --system --uid 10001 --home-dir /data --create-home capstan
COPY --from=build /opt/capstan /opt/capstan
COPY samples /opt/capstan/samples
ENV PATH=/opt/capstan/bin:$PATH
USER 10001
VOLUME ["/data"]
EXPOSE 50051 8080
ENTRYPOINT ["capstan-server", "--grpc-listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:8080", \
            "--data-dir", "/data", "--helm-bin", "/opt/capstan/tools/bin/helm"]
# Mount a policy file (README, "Security") there, or give other flags as the command; without
# --auth-policy the server refuses to listen on 0.0.0.0 (unless --insecure-no-auth).
CMD ["--auth-policy", "/etc/capstan/policy.yaml"]
