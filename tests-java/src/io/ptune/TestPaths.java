package io.ptune;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the real models and datasets of the shared folder are (Surefire passes ptune.shared). */
public final class TestPaths {
    /**
     * For {@code @DisabledIfSystemProperty(named = "ptune.kernel", matches = KERNEL_INDEPENDENT)}:
     * the suite runs once per CPU-kernel configuration (toolchains/kernels.sh, pom.xml sets
     * ptune.kernel); a test whose outcome cannot depend on the kernels (processes killed, a full
     * disk) runs only in the first, as-given, one (and always when the property is not set).
     */
    public static final String KERNEL_INDEPENDENT = "^(?!as-given$).*";

    private TestPaths() {}

    /** The java binary running this test JVM. */
    public static String javaBinary() {
        return ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString());
    }

    /** This test JVM's class path (the native library included). */
    public static String classPath() {
        return System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    }

    /** {@code ptune ARGS} in a child JVM with this test JVM's class path. */
    public static java.util.List<String> ptuneCommand(java.util.List<String> args) {
        java.util.List<String> command = new java.util.ArrayList<>(java.util.List.of(javaBinary(), "-XX:-UsePerfData",
                "-cp", classPath(), "io.ptune.cli.PtuneCli"));
        command.addAll(args);
        return command;
    }

    public static Path shared() {
        Path shared = Path.of(System.getProperty("ptune.shared", "../shared"));
        if (!Files.isDirectory(shared)) {
            throw new IllegalStateException("shared folder " + shared.toAbsolutePath()
                    + " not found; run the tests through Maven, which sets -Dptune.shared");
        }
        return shared;
    }

    /** The stories260K Llama (Hugging Face layout). */
    public static Path stories260k() {
        return shared().resolve("models/stories260k");
    }

    public static Path alpacaEn() {
        return shared().resolve("data/alpaca_en/alpaca_data.json");
    }

    /** The repository root (Surefire passes ptune.root). */
    public static Path root() {
        return Path.of(System.getProperty("ptune.root", "."));
    }

    /** tests-java/resources/peft: the tiny GQA Llama and the PEFT comparison files. */
    /**
     * The BERT-family ONNX encoders of langchain4j's Maven Central jars, unpacked by the build into
     * target/onnx-models/{all-minilm-l6-v2, bge-small-en-v15, bge-small-zh-v15}/.
     */
    public static Path onnxModel(String name) {
        Path dir = Path.of(System.getProperty("ptune.onnx.models", "target/onnx-models")).resolve(name);
        try (var files = java.nio.file.Files.list(dir)) {
            return files.filter(f -> f.toString().endsWith(".onnx")).findFirst()
                    .orElseThrow(() -> new IllegalStateException("no .onnx in " + dir));
        } catch (java.io.IOException e) {
            throw new IllegalStateException(dir + " is missing: the Maven build unpacks it (generate-test-resources)", e);
        }
    }

    public static Path peftResources() {
        return root().resolve("tests-java/resources/peft");
    }

    /** The tiny random GQA Llama in Hugging Face layout (tests-java/peft/make_tiny_llama.py). */
    public static Path tinyLlama() {
        return peftResources().resolve("tiny-llama");
    }
}
