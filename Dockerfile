# Builds engine-store and engine-store-probe for compose.yaml (Swift 6 on Debian 12).
FROM swift:6.0-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev libhiredis-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY proto-spec ./proto-spec
RUN swift build -c release --product engine-store && swift build -c release --product engine-store-probe \
    && mkdir /out && cp .build/release/engine-store .build/release/engine-store-probe /out/

FROM swift:6.0-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 libhiredis0.14 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["engine-store"]
CMD ["serve"]
