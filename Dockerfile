# periscope in a container: the image of the Kubernetes Job in deploy/k8s/.
#   docker build -t periscope .
#   docker run --rm periscope run --mock --duration 10s
# Stage 1 builds the release binary from the locked dependencies; stage 2 is
# distroless (glibc, CA certificates, no shell), running as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them all.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
COPY scenarios ./scenarios
COPY datasets ./datasets
# Touch the sources so cargo rebuilds periscope over the placeholder above.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && cp target/release/periscope /periscope

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /periscope /usr/local/bin/periscope
# distroless's nonroot user, by number so that runAsNonRoot can check it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/periscope"]
CMD ["--help"]
