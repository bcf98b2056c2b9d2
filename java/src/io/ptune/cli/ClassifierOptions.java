package io.ptune.cli;

import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.ClassificationHead;
import io.ptune.classify.MultiTokenRule;
import io.ptune.classify.Pooling;
import io.ptune.data.ClassificationDataset;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Option;

/**
 * The flags that shape a classifier (train --task classify; eval / classify without --adapter:
 * zero-shot PET) and that say which fields of a data file hold the text and the label.
 */
final class ClassifierOptions {
    @Option(names = "--head", paramLabel = "KIND",
            description = "Classification head: linear | verbalizer | soft-verbalizer (default: linear for training,"
                    + " verbalizer for zero-shot eval/classify).")
    String head;

    @Option(names = "--pooling", paramLabel = "KIND",
            description = "What the linear head reads: cls (position 0 through BERT's pooler, as transformers + PEFT)"
                    + " | first-text ([CLS] behind any prompt) | mean | last (default: cls for encoders, last for"
                    + " decoders).")
    String pooling;

    @Option(names = "--template", paramLabel = "TEXT",
            description = "PET pattern of the verbalizer heads, with {text}, optional {text_b} and one {mask}"
                    + " (default: \"{text} It was {mask}.\").")
    String template;

    @Option(names = "--verbalizer", paramLabel = "SPEC",
            description = "Label words per class: \"negative=bad,terrible;positive=good,great\" (verbalizer heads;"
                    + " a soft verbalizer defaults to the label names).")
    String verbalizer;

    @Option(names = "--multi-token", paramLabel = "RULE",
            description = "A label word of several tokens scores by its first | mean | max token (default: first).")
    String multiToken;

    @Option(names = "--calibrate",
            description = "Contextual calibration of the verbalizer: divide by the scores of the content-free inputs"
                    + " \"\" and \"N/A\".")
    boolean calibrate;

    @Option(names = "--text-field", paramLabel = "NAME",
            description = "Field holding the text (default: the first of text, sentence, review, content).")
    String textField;

    @Option(names = "--text-b-field", paramLabel = "NAME", description = "Field holding the second text of pairs.")
    String textBField;

    @Option(names = "--label-field", paramLabel = "NAME", description = "Field holding the label (default: label).")
    String labelField;

    static final Map<String, String> FLAGS = Map.ofEntries(
            Map.entry("head", "--head"),
            Map.entry("pooling", "--pooling"),
            Map.entry("template", "--template"),
            Map.entry("verbalizer", "--verbalizer"),
            Map.entry("multiToken", "--multi-token"),
            Map.entry("calibrate", "--calibrate"),
            Map.entry("focalGamma", "--focal-gamma"),
            Map.entry("classWeights", "--focal-alpha"),
            Map.entry("labelSmoothing", "--label-smoothing"));

    ClassificationDataset.Fields fields() {
        return new ClassificationDataset.Fields(textField, textBField, labelField == null ? "label" : labelField);
    }

    /** Whether any flag that shapes a classifier was given. */
    boolean shapesClassifier() {
        return head != null || pooling != null || template != null || verbalizer != null || multiToken != null
                || calibrate;
    }

    /** Whether any classification flag at all was given (for commands of another task). */
    boolean anyGiven() {
        return shapesClassifier() || textField != null || textBField != null || labelField != null;
    }

    /** The classifier's configuration; {@code defaultHead} when --head is not given. */
    ClassificationConfig config(ClassificationHead defaultHead, long seed) {
        ClassificationConfig.Builder builder = ClassificationConfig.builder()
                .head(head == null ? defaultHead : ClassificationHead.parse(head)).seed(seed);
        if (pooling != null) {
            builder.pooling(Pooling.parse(pooling));
        }
        if (template != null) {
            builder.template(template);
        }
        if (verbalizer != null) {
            builder.verbalizer(verbalizer);
        }
        if (multiToken != null) {
            builder.multiToken(MultiTokenRule.parse(multiToken));
        }
        return builder.calibrate(calibrate).build();
    }

    /** Names of the given flags that shape a classifier (rejected when an adapter already has one). */
    List<String> givenShapeFlags() {
        List<String> given = new ArrayList<>();
        addIf(given, head != null, "--head");
        addIf(given, pooling != null, "--pooling");
        addIf(given, template != null, "--template");
        addIf(given, verbalizer != null, "--verbalizer");
        addIf(given, multiToken != null, "--multi-token");
        addIf(given, calibrate, "--calibrate");
        return given;
    }

    private static void addIf(List<String> list, boolean given, String flag) {
        if (given) {
            list.add(flag);
        }
    }

    /** The data file with these fields; labels null to take them from the file. */
    ClassificationDataset load(Path file, List<String> labels) {
        return ClassificationDataset.load(file, fields(), labels);
    }
}
