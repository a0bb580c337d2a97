"""The FGMU prompt in Chinese: the paper's prompt (Fig. 4) word for word, with Chinese targets."""

from __future__ import annotations

from mellm_core import PluginSpec, hookimpl
from mellm_core.text.fgmu import FgmuParams, Phrases, TemplatePrompt

PHRASES = Phrases(
    prior=(
        "这是一个人脸图像，叠加了微表情的可视化光流图。在此图像中，每个面部区域的颜色表示运动的方向，亮度表示运动的幅度。"
        "颜色到方向的映射如下：\n"
        "向上：紫色；右上：品红色/粉红色；向右：红色；右下：橙黄色；向下：黄绿色；左下：绿色；向左：青色；左上：蓝色。\n"
        "（区域名称中的左、右以被拍摄者自身为准：其右侧位于图像左侧。）"
    ),
    meu_steps=(
        "你需要按以下步骤进行分析：\n"
        "视觉检查：仔细观察颜色块在不同面部区域的分布。排除整体头部运动和亮度较低（运动较弱）的区域。仅关注明显的局部运动单元。"
        "识别每个关键区域的颜色、相应的运动方向和运动强度。并基于特定面部区域的运动方向和幅度，推断图像中涉及的面部动作单元（AUs）。\n"
        "表情推理：结合上下文信息，并根据识别出的面部动作单元（AUs）及其组合，推理出人脸所表达的微表情。\n"
        "最终结论：请总结分析结果，明确列出推断出的面部动作单元（AUs）以及最终推断的微表情。\n"
        "（微表情归类为以下{n}种情绪之一：{labels}。）"
    ),
    mer_question="这张人脸表现的是哪种微表情？请只回答一个词，从以下{n}种情绪中选择：{labels}。",
    compact_meu="哪些区域在运动？推断动作单元（AUs）和微表情（{labels}）。",
    compact_mer="哪种微表情（{labels}）？只回答一个词。",
    compact_observation="{region}{colour}{direction}",
    compact_aus="：{aus}",
    compact_sep="；",
    headings=("视觉检查：", "表情推理：", "最终结论："),
    observation="{region}：颜色：{colour}；运动方向：{direction}；运动强度：{intensity}",
    supports="；推断的面部动作单元（AUs）：{aus}。",
    no_au="；无对应的动作单元（可能是头部运动残余或标注之外的动作）。",
    nothing_salient="未见明显的局部运动，所有色块亮度都较低。",
    active="激活的动作单元：{aus}。",
    unseen="{aus}在图中过于微弱，难以看出。",
    prototype_full="其中包含{emotion}的典型组合{prototype}。",
    prototype_part="{emotion}的典型组合（{prototype}）中出现了{shared}，指向{emotion}。",
    prototype_none="这些动作单元都不属于{emotion}的典型组合（{prototype}），但整体运动模式仍指向{emotion}。",
    no_prototype="整体运动模式指向{emotion}。",
    conclusion="动作单元（AUs）：{aus}。微表情类型：{emotion}。",
    no_aus="无",
    and_="、",
    au_detail="AU{au}（{name}，{muscle}）",
    side={"R": "（右侧）", "L": "（左侧）"},
    regions={
        "right inner brow": "右侧眉头", "left inner brow": "左侧眉头", "right outer brow": "右侧眉尾",
        "left outer brow": "左侧眉尾", "right upper eyelid": "右上眼睑", "left upper eyelid": "左上眼睑",
        "right lower eyelid": "右下眼睑", "left lower eyelid": "左下眼睑", "right cheek": "右侧脸颊",
        "left cheek": "左侧脸颊", "nose wings": "鼻翼", "right mouth corner": "右侧嘴角",
        "left mouth corner": "左侧嘴角",
        "upper lip": "上唇", "lower lip": "下唇", "chin": "下巴",
    },
    directions={
        "right": "向右", "down-right": "右下", "down": "向下", "down-left": "左下", "left": "向左", "up-left": "左上",
        "up": "向上", "up-right": "右上",
    },
    colours={
        "red": "红色", "orange-yellow": "橙黄色", "yellow-green": "黄绿色", "green": "绿色", "cyan": "青色",
        "blue": "蓝色", "purple": "紫色", "magenta": "品红色/粉红色",
    },
    intensities={"weak": "弱", "medium": "中等", "strong": "强"},
    emotions={
        "happiness": "开心", "sadness": "悲伤", "fear": "害怕", "surprise": "惊讶", "disgust": "厌恶",
        "contempt": "轻蔑", "anger": "生气", "negative": "消极", "positive": "积极", "others": "其他",
        "repression": "压抑",
    },
    au_names={
        1: "眉内侧上扬", 2: "眉外侧上扬", 4: "皱眉", 5: "上眼睑上提", 6: "脸颊上提", 7: "眼睑收紧", 9: "皱鼻",
        10: "上唇上提", 12: "嘴角上扬", 14: "酒窝", 15: "嘴角下拉", 16: "下唇下拉", 17: "下巴上抬", 20: "嘴唇横向拉伸",
        23: "嘴唇收紧", 24: "嘴唇紧压", 25: "双唇分开", 26: "下颌下垂", 43: "闭眼", 45: "眨眼",
    },
    muscles={
        1: "额肌内侧部", 2: "额肌外侧部", 4: "皱眉肌和降眉肌", 5: "上睑提肌", 6: "眼轮匝肌眶部", 7: "眼轮匝肌睑部",
        9: "提上唇鼻翼肌", 10: "提上唇肌", 12: "颧大肌", 14: "颊肌", 15: "降口角肌", 16: "降下唇肌", 17: "颏肌",
        20: "笑肌", 23: "口轮匝肌", 24: "口轮匝肌", 25: "降下唇肌", 26: "咬肌放松", 43: "上睑提肌放松", 45: "眼轮匝肌",
    },
    numbers={1: "一", 2: "两", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十"},
    list_sep="、",
    list_last="或",
    sentence_sep="",
)


def make_prompt(params: FgmuParams) -> TemplatePrompt:
    return TemplatePrompt(PHRASES, params)


@hookimpl
def mellm_prompt():
    yield PluginSpec("fgmu-zh", make_prompt, FgmuParams,
                     "FGMU prompt and targets in Chinese (the paper's Fig. 4 prompt)")
