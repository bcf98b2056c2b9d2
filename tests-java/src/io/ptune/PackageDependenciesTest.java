package io.ptune;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Package dependencies run one way: each package of java/src may use only packages of a lower
 * layer, so there are no cycles (model never reaches prompt, prompt never reaches adapter, the
 * native bridge never reaches the model package), and only the native bridge touches JavaCPP.
 * Found by scanning the sources' imports and fully qualified names, comments and strings removed.
 */
class PackageDependenciesTest {
    /** Layer of each package ("" is io.ptune itself: the exception types). */
    private static final Map<String, Integer> LAYERS = Map.ofEntries(
            Map.entry("internal", 0),
            Map.entry("", 1),
            Map.entry("nativebridge", 2),
            Map.entry("nativebridge.presets", 2),
            Map.entry("model", 3),
            Map.entry("data", 4),
            Map.entry("prompt", 4),
            Map.entry("adapter", 5),
            Map.entry("inference", 5),
            Map.entry("train", 6),
            Map.entry("classify", 7),
            Map.entry("report", 7),
            Map.entry("inspect", 8),
            Map.entry("serve", 8),
            Map.entry("cli", 9));

    private static final Pattern REFERENCE = Pattern.compile("\\bio\\.ptune\\.((?:[a-z]+\\.)*)[A-Z]");

    /** The source without comments, string literals and text blocks. */
    static String code(String source) {
        String s = source.replaceAll("(?s)\"\"\".*?\"\"\"", "\"\"");
        s = s.replaceAll("\"(?:\\\\.|[^\"\\\\])*\"", "\"\"");
        s = s.replaceAll("(?s)/\\*.*?\\*/", " ");
        return s.replaceAll("//[^\n]*", "");
    }

    @Test
    void packagesDependOnLowerLayersOnlyAndOnlyTheBridgeTouchesJavaCpp() throws IOException {
        Path src = TestPaths.root().resolve("java/src/io/ptune");
        List<String> violations = new ArrayList<>();
        TreeSet<String> seen = new TreeSet<>();
        try (Stream<Path> files = Files.walk(src)) {
            for (Path file : files.filter(f -> f.toString().endsWith(".java")).toList()) {
                String pkg = src.relativize(file.getParent()).toString().replace('/', '.');
                seen.add(pkg);
                Integer layer = LAYERS.get(pkg);
                if (layer == null) {
                    violations.add(file + ": package io.ptune." + pkg + " has no layer in this test; place it");
                    continue;
                }
                String code = code(Files.readString(file));
                Matcher m = REFERENCE.matcher(code);
                while (m.find()) {
                    String used = m.group(1).isEmpty() ? "" : m.group(1).substring(0, m.group(1).length() - 1);
                    if (used.equals(pkg)) {
                        continue;
                    }
                    Integer usedLayer = LAYERS.get(used);
                    if (usedLayer == null || usedLayer >= layer) {
                        violations.add(src.getParent().getParent().relativize(file) + " (io.ptune." + pkg + ", layer "
                                + layer + ") uses io.ptune." + used + " (layer " + usedLayer + ")");
                    }
                }
                if (!pkg.startsWith("nativebridge") && code.contains("org.bytedeco")) {
                    violations.add(file + ": only io.ptune.nativebridge may touch JavaCPP (org.bytedeco)");
                }
            }
        }
        assertTrue(seen.containsAll(List.of("model", "prompt", "adapter", "nativebridge")), "scanned " + seen);
        assertTrue(violations.isEmpty(), String.join("\n", violations));
    }

    @Test
    void theScannerIgnoresCommentsAndStringsButSeesCode() {
        String source = """
                import io.ptune.model.Model;
                // io.ptune.cli.PtuneCli in a comment
                /** {@link io.ptune.train.Trainer} in javadoc */
                String s = "io.ptune.adapter.PromptAdapter";
                Object o = io.ptune.data.Batch.class;
                """;
        List<String> found = new ArrayList<>();
        Matcher m = REFERENCE.matcher(code(source));
        while (m.find()) {
            found.add(m.group(1));
        }
        assertTrue(found.equals(List.of("model.", "data.")), found.toString());
    }
}
