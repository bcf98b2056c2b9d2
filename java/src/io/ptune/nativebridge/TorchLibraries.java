package io.ptune.nativebridge;

import io.ptune.PtuneException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.Loader;

/**
 * Finds and loads libtorch ahead of {@code libptune.so} for the platform jars built against a
 * PyTorch 2.x libtorch ({@code toolchains/torch2.cmake}, {@code toolchains/cuda.cmake}): their
 * libptune records no path to libtorch, so the libraries come from the folder named by
 * {@code PTUNE_LIBTORCH_DIR}, else from the {@code torch} package of {@code python3} (or of
 * {@code PTUNE_TORCH_PYTHON}). Once loaded by absolute path, the dynamic loader reuses them for
 * libptune's dependencies by name, and libtorch finds its own (the CUDA wheels) through its
 * {@code $ORIGIN} RPATH. Jars built against Debian's libtorch ({@code toolchains/cpu.cmake})
 * find it in the system paths; nothing is loaded here for them.
 *
 * <p>The platform jar says which kind it is in {@code ptune-libtorch.properties} beside the
 * native libraries, written by {@code native/CMakeLists.txt}.
 */
final class TorchLibraries {
    /** The environment variable naming the folder that holds {@code libtorch_cpu.so}. */
    static final String DIR_VARIABLE = "PTUNE_LIBTORCH_DIR";
    static final String HINT = "set " + DIR_VARIABLE + " to the folder holding libtorch_cpu.so";
    private static final String DESCRIPTOR = "ptune-libtorch.properties";

    private TorchLibraries() {}

    /** How the platform jar's libptune finds libtorch; empty for jars without a descriptor. */
    static Optional<Properties> descriptor() {
        String resource = "/io/ptune/nativebridge/" + Loader.getPlatform() + "/" + DESCRIPTOR;
        try (InputStream in = TorchLibraries.class.getResourceAsStream(resource)) {
            if (in == null) {
                return Optional.empty();
            }
            Properties properties = new Properties();
            properties.load(in);
            return Optional.of(properties);
        } catch (IOException e) {
            throw new PtuneException("cannot read " + resource + " from the ptune platform jar: " + e.getMessage(), e);
        }
    }

    /** True when the platform jar loads libtorch from the environment (a PyTorch 2.x build). */
    static boolean external(Optional<Properties> descriptor) {
        return descriptor.map(p -> "external".equals(p.getProperty("libtorch"))).orElse(false);
    }

    /** What the platform jar was built against, for messages: "PyTorch 2.14.1 with CUDA". */
    static String builtAgainst(Properties descriptor) {
        return "PyTorch " + descriptor.getProperty("torch.version", "2.x")
                + ("ON".equalsIgnoreCase(descriptor.getProperty("cuda", "OFF")) ? " with CUDA" : "");
    }

    /** Loads libtorch from the environment when the platform jar needs that; else does nothing. */
    static void loadIfExternal(Optional<Properties> descriptor) {
        if (!external(descriptor)) {
            return;
        }
        Properties properties = descriptor.get();
        Path dir = locate(properties, System.getenv());
        for (String name : libraries(properties)) {
            Path library = dir.resolve("lib" + name + ".so");
            if (!Files.isRegularFile(library)) {
                throw new PtuneException(library + " is missing: this ptune was built against "
                        + builtAgainst(properties) + " and needs lib" + name + ".so beside libtorch_cpu.so ("
                        + HINT + " of such a build)");
            }
            try {
                System.load(library.toAbsolutePath().toString());
            } catch (UnsatisfiedLinkError e) {
                throw new PtuneException("cannot load " + library + " (" + e.getMessage() + "); this ptune was built"
                        + " against " + builtAgainst(properties) + ", and libtorch must be that version ("
                        + HINT + ")", e);
            }
        }
    }

    /** PTUNE_LIBTORCH_DIR, else python's torch/lib; a PtuneException saying what to set otherwise. */
    static Path locate(Properties descriptor, Map<String, String> env) {
        String configured = env.get(DIR_VARIABLE);
        if (configured != null && !configured.isBlank()) {
            Path dir = Path.of(configured.strip());
            if (!Files.isRegularFile(dir.resolve("libtorch_cpu.so"))) {
                throw new PtuneException(DIR_VARIABLE + "=" + configured + " holds no libtorch_cpu.so; " + HINT
                        + " (a torch wheel's site-packages/torch/lib, or libtorch/lib of a libtorch archive)");
            }
            return dir;
        }
        Optional<Path> fromPython = pythonTorchLib(python(env));
        if (fromPython.isPresent() && Files.isRegularFile(fromPython.get().resolve("libtorch_cpu.so"))) {
            return fromPython.get();
        }
        throw new PtuneException("libtorch not found: this ptune was built against " + builtAgainst(descriptor)
                + ", which it loads at run time, and " + python(env) + " has no torch package; " + HINT
                + " (a torch wheel's site-packages/torch/lib, or libtorch/lib of a libtorch archive)");
    }

    /** PTUNE_TORCH_PYTHON, else python3. */
    private static String python(Map<String, String> env) {
        String python = env.get("PTUNE_TORCH_PYTHON");
        return python == null || python.isBlank() ? "python3" : python.strip();
    }

    /**
     * The lib folder of the torch package python would import, found without importing it (which
     * would load all of libtorch into a second process); empty when there is no python or torch.
     */
    static Optional<Path> pythonTorchLib(String python) {
        ProcessBuilder builder = new ProcessBuilder(python, "-c",
                "import importlib.util, os\n"
                        + "s = importlib.util.find_spec('torch')\n"
                        + "print(os.path.join(s.submodule_search_locations[0], 'lib') if s else '')");
        builder.redirectError(ProcessBuilder.Redirect.DISCARD);
        try {
            Process process = builder.start();
            byte[] out = process.getInputStream().readAllBytes();
            if (!process.waitFor(30, TimeUnit.SECONDS) || process.exitValue() != 0) {
                process.destroyForcibly();
                return Optional.empty();
            }
            String dir = new String(out, StandardCharsets.UTF_8).strip();
            return dir.isEmpty() ? Optional.empty() : Optional.of(Path.of(dir));
        } catch (IOException e) {
            return Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
    }

    /** The libtorch libraries to load, in order (c10, torch_cpu, [c10_cuda, torch_cuda,] torch). */
    static List<String> libraries(Properties descriptor) {
        List<String> names = new ArrayList<>();
        for (String name : descriptor.getProperty("libraries", "c10,torch_cpu,torch").split(",")) {
            if (!name.isBlank()) {
                names.add(name.strip());
            }
        }
        return names;
    }
}
